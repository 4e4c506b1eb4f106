"""The client side: Socket.IO handlers, admission of clients, HTTP routes and the OpenAPI document."""
