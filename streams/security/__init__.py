"""Security adapters: the keyring file of agency keys, and the transport settings of clients."""
