"""The client side: Socket.IO handlers, HTTP routes and the OpenAPI document."""
