"""The protocol kit: what every face shares, written once. It imports no face."""
