"""The Floodlight controller side: its keystore, its properties, a TLS client and the Java bridge."""
