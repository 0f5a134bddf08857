"""A real gRPC client (grpcio) for proxy_http2's tests: calls
grpc_backend.py's methods through TARGET (host:port, h2c) and prints one
line per result, for the Rust test to compare.

    python3 grpc_client.py TARGET
"""

import sys

import grpc


def ident(b):
    return b


channel = grpc.insecure_channel(sys.argv[1])
unary = channel.unary_unary("/test.Echo/Unary", ident, ident)
reply, call = unary.with_call(b"hello", timeout=10)
print("unary", reply.decode(), dict(call.trailing_metadata()).get("x-served-by"))

chat = channel.stream_stream("/test.Echo/Chat", ident, ident)
# A generator the server answers message by message: the stream is open
# both ways at once (the second message is sent after the first answer).
answers = []
import queue

outbox = queue.Queue()


def messages():
    while True:
        m = outbox.get()
        if m is None:
            return
        yield m


responses = chat(messages(), timeout=10)
for word in ["one", "two", "three"]:
    outbox.put(word.encode())
    answers.append(next(responses).decode())
outbox.put(None)
rest = list(responses)
print("chat", ",".join(answers), len(rest), dict(responses.trailing_metadata()).get("x-count"))

fail = channel.unary_unary("/test.Echo/Fail", ident, ident)
try:
    fail(b"x", timeout=10)
    print("fail none")
except grpc.RpcError as e:
    print("fail", e.code().name, e.details())
