"""An HTTP/2 backend for proxy_http2's tests: cleartext, prior knowledge
(h2c), on the `h2` library (what hypercorn is built on), with behaviours a
test can ask for by path, and GOAWAY or REFUSED_STREAM on demand.

    python3 h2_backend.py PORT NAME [--goaway-after N] [--refuse-every N]
                                    [--tls CERT KEY]

Paths:
  /echo          the request body back, as it arrives (flow control both ways)
  /headers       the request's fields, pseudo-fields too, one "name: value" a line
  /big?n=BYTES   n bytes of a fixed pattern (i % 251)
  /trailers      a body, then trailers x-trailer and grpc-status
  /slow?ms=MS    "slept" after MS milliseconds
  anything else  "hello from NAME"
Every response carries x-backend: NAME and x-stream: the stream id.

--goaway-after N: after the N-th stream of a connection, GOAWAY naming it
as the last stream; the connection closes once its streams are done.
--refuse-every N: every N-th stream is reset with REFUSED_STREAM.
--tls CERT KEY: TLS with ALPN h2 (for h2:// tests) instead of h2c.
"""

import asyncio
import ssl
import struct
import sys
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.errors

PORT = int(sys.argv[1])
NAME = sys.argv[2]
GOAWAY_AFTER = 0
REFUSE_EVERY = 0
TLS = None
args = sys.argv[3:]
while args:
    if args[0] == "--tls":
        TLS, args = (args[1], args[2]), args[3:]
        continue
    flag, value, args = args[0], int(args[1]), args[2:]
    if flag == "--goaway-after":
        GOAWAY_AFTER = value
    elif flag == "--refuse-every":
        REFUSE_EVERY = value


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.streams = {}  # id -> Stream
        self.window_open = asyncio.Event()
        self.seen = 0
        self.going_away = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)

    async def run(self):
        self.h2.initiate_connection()
        self.flush()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.h2.receive_data(data):
                    self.on(event)
                self.flush()
                await self.writer.drain()
                if self.going_away and not self.streams:
                    break
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            for s in self.streams.values():
                s.body.put_nowait(None)
            self.window_open.set()
            self.writer.close()

    def on(self, event):
        if isinstance(event, h2.events.RequestReceived):
            self.seen += 1
            sid = event.stream_id
            if REFUSE_EVERY and self.seen % REFUSE_EVERY == 0:
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            if self.going_away:
                return
            stream = Stream(self, sid, event.headers)
            self.streams[sid] = stream
            if event.stream_ended:
                stream.body.put_nowait(None)
            asyncio.ensure_future(stream.respond())
            if GOAWAY_AFTER and self.seen >= GOAWAY_AFTER:
                # A graceful GOAWAY written by hand: the library's
                # close_connection() would refuse to send the answers
                # still owed on the streams up to `sid`.
                self.going_away = True
                self.flush()
                frame = struct.pack(">I", 8)[1:] + b"\x07\x00" + struct.pack(">III", 0, sid, 0)
                self.writer.write(frame)
        elif isinstance(event, h2.events.DataReceived):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s.body.put_nowait(event.data)
                s.unacked += event.flow_controlled_length
            else:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s.body.put_nowait(None)
        elif isinstance(event, h2.events.TrailersReceived):
            s = self.streams.get(event.stream_id)
            if s is not None:
                s.trailers = event.headers
        elif isinstance(event, h2.events.StreamReset):
            s = self.streams.pop(event.stream_id, None)
            if s is not None:
                s.body.put_nowait(None)
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_open.set()

    def done(self, sid):
        self.streams.pop(sid, None)
        if self.going_away and not self.streams:
            self.flush()
            self.writer.close()


class Stream:
    def __init__(self, conn, sid, headers):
        self.conn, self.sid = conn, sid
        self.headers = [(n.decode(), v.decode()) for n, v in headers]
        self.body = asyncio.Queue()
        self.unacked = 0
        self.trailers = None

    def header(self, name):
        return next((v for n, v in self.headers if n == name), None)

    async def read(self):
        """The next chunk of the request body (its window given back), or None."""
        chunk = await self.body.get()
        if chunk is not None and self.unacked:
            try:
                self.conn.h2.acknowledge_received_data(self.unacked, self.sid)
            except Exception:
                pass
            self.unacked = 0
            self.conn.flush()
        return chunk

    def start(self, status=200, extra=()):
        h = [(":status", str(status)), ("x-backend", NAME), ("x-stream", str(self.sid))]
        self.conn.h2.send_headers(self.sid, h + list(extra))
        self.conn.flush()

    async def send(self, data, end=False):
        h2c = self.conn.h2
        while data:
            window = min(h2c.local_flow_control_window(self.sid), h2c.max_outbound_frame_size)
            if window <= 0:
                self.conn.window_open.clear()
                await self.conn.window_open.wait()
                if self.sid not in self.conn.streams:
                    return
                continue
            h2c.send_data(self.sid, data[:window])
            data = data[window:]
            self.conn.flush()
            await self.conn.writer.drain()
        if end:
            h2c.end_stream(self.sid)
            self.conn.flush()

    async def respond(self):
        try:
            await self.answer()
        except Exception:
            pass
        finally:
            self.conn.done(self.sid)
            self.conn.flush()

    async def answer(self):
        url = urllib.parse.urlsplit(self.header(":path") or "/")
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/echo":
            self.start(extra=[("x-te", self.header("te") or "")])
            while True:
                chunk = await self.read()
                if chunk is None:
                    break
                await self.send(chunk)
            await self.send(b"", end=True)
            return
        body = b""
        while (chunk := await self.read()) is not None:
            body += chunk
        if url.path == "/headers":
            text = "".join(f"{n}: {v}\n" for n, v in self.headers)
            self.start(extra=[("content-type", "text/plain")])
            await self.send(text.encode(), end=True)
        elif url.path == "/big":
            n = int(query.get("n", "1048576"))
            self.start(extra=[("content-length", str(n))])
            pattern = bytes(i % 251 for i in range(251 * 64))
            sent = 0
            while sent < n:
                part = pattern[: min(len(pattern), n - sent)]
                await self.send(part)
                sent += len(part)
            await self.send(b"", end=True)
        elif url.path == "/trailers":
            self.start(extra=[("content-type", "application/grpc")])
            await self.send(b"with trailers")
            self.conn.h2.send_headers(
                self.sid, [("x-trailer", "yes"), ("grpc-status", "0")], end_stream=True
            )
            self.conn.flush()
        elif url.path == "/slow":
            await asyncio.sleep(int(query.get("ms", "200")) / 1000)
            self.start()
            await self.send(b"slept", end=True)
        else:
            self.start(extra=[("content-type", "text/plain")])
            await self.send(f"hello from {NAME}".encode(), end=True)


async def main():
    async def serve(reader, writer):
        await Conn(reader, writer).run()

    context = None
    if TLS:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*TLS)
        context.set_alpn_protocols(["h2"])
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
