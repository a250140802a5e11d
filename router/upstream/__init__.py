"""Talking to providers: the HTTP/1.1 client, one provider's requests, the stream relay."""
