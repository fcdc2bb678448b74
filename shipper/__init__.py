"""shipper: tail model logs, parse them fast, ship them into Elasticsearch exactly once."""

__version__ = "0.1.0"
