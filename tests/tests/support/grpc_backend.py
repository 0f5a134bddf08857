"""A real gRPC server (grpcio) for proxy_http2's tests, without protoc:
generic handlers with identity serializers, so messages are raw bytes.

    python3 grpc_backend.py PORT

test.Echo/Unary   answers the request's bytes, prefixed "echo:", with
                  trailing metadata x-served-by: grpcio
test.Echo/Chat    a bidi stream: each message answered as it arrives
                  ("chat:" + message), trailing metadata x-count: N
test.Echo/Fail    fails with NOT_FOUND and details "no such thing"
"""

import sys
from concurrent import futures

import grpc


def unary(request, context):
    context.set_trailing_metadata((("x-served-by", "grpcio"),))
    return b"echo:" + request


def chat(requests, context):
    n = 0
    for message in requests:
        n += 1
        yield b"chat:" + message
    context.set_trailing_metadata((("x-count", str(n)),))


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def ident(b):
    return b


handlers = {
    "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
    "Chat": grpc.stream_stream_rpc_method_handler(chat, ident, ident),
    "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
print("serving", flush=True)
server.wait_for_termination()
