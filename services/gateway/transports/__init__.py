"""Client connections: each translates one wire format to and from the call session."""
