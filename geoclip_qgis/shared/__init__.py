"""Standard library only, imported by both wings: the protocol, the one result schema, geodesy, defaults."""
