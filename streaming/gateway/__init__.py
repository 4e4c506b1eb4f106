"""The client side: Socket.IO handlers, admission of clients, history replays, HTTP routes and the OpenAPI document."""
