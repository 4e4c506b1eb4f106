"""streaming.gateway.fastpath.wsproto_socket: the upgrade request rebuilt from a WSGI environ is one wsproto accepts."""
from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from streaming.gateway.fastpath.wsproto_socket import handshake_request

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/socket.io/",
    "QUERY_STRING": "EIO=4&transport=websocket",
    "HTTP_HOST": "127.0.0.1:5021",
    "HTTP_UPGRADE": "websocket",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "wsgi.input": object(),
}


def test_the_rebuilt_request_is_accepted_with_the_rfc_example_key() -> None:
    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(handshake_request(ENVIRON))
    events = list(conn.events())
    assert len(events) == 1 and isinstance(events[0], Request)
    answer = conn.send(AcceptConnection())
    # RFC 6455 section 1.3: this key's accept value
    accept = b"Sec-WebSocket-Accept"
    assert accept + b": s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer.replace(accept.lower(), accept)
    assert answer.startswith(b"HTTP/1.1 101")


def test_only_http_headers_are_copied() -> None:
    request = handshake_request(ENVIRON).decode()
    assert request.startswith("GET /socket.io/ HTTP/1.1\r\n") and request.endswith("\r\n\r\n")
    assert "Sec-Websocket-Key: dGhlIHNhbXBsZSBub25jZQ==" in request
    assert "wsgi" not in request and "Request-Method" not in request
