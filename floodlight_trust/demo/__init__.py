"""`ftrust demo`: the whole system as one story, on embedded defaults, in a temporary directory."""
