//! Host services on the request being served: fields, headers, notes,
//! status, the response head, and both bodies.

use super::*;

pub(super) fn req<'a>(raw: *mut c_void) -> &'a mut RequestCtx {
    // SAFETY: modules only hold handles the host gave them, for as long as
    // the host keeps the request (see CtxHandle).
    unsafe { ctx(raw) }
}

fn lend(s: &str) -> AbiStr {
    AbiStr::new(s.as_bytes())
}

host_fn! {
    pub(super) fn req_field(raw: *mut c_void, which: u32) -> AbiStr = AbiStr::EMPTY;
    {
        let r = req(raw);
        match which {
            field::METHOD => AbiStr::new(r.head.method()),
            field::PATH => AbiStr::new(r.head.path()),
            field::QUERY => AbiStr::new(r.head.query()),
            field::VERSION => lend(r.head.version.as_str()),
            field::CLIENT_ADDR => AbiStr::new(&r.conn.client_text),
            field::LOCAL_ADDR => AbiStr::new(r.conn.local_text()),
            field::SCHEME => lend(r.conn.scheme),
            field::SERVER_NAME => lend(&r.server_name),
            field::ABSOLUTE_AUTHORITY => AbiStr::new(r.head.absolute_authority()),
            _ => AbiStr::EMPTY,
        }
    }
}

host_fn! {
    pub(super) fn req_vhost(raw: *mut c_void) -> u32 = u32::MAX;
    {
        req(raw).vhost
    }
}

fn map(r: &mut RequestCtx, which: u32) -> &mut Fields {
    match which {
        hmap::RESPONSE => &mut r.response_headers,
        hmap::REQUEST_TRAILERS => &mut r.request_trailers,
        hmap::RESPONSE_TRAILERS => &mut r.response_trailers,
        _ => &mut r.head.fields,
    }
}

host_fn! {
    pub(super) fn header_get(
        raw: *mut c_void,
        which: u32,
        name: AbiStr,
        out: *mut AbiStr,
    ) -> bool = false;
    {
        match map(req(raw), which).get(bytes(name)) {
            Some(v) => {
                // SAFETY: `out` is writable, owned by the caller.
                unsafe { out.write(AbiStr::new(v)) };
                true
            }
            None => false,
        }
    }
}

// The fields' offsets are lent as they are kept: the two types must agree.
const _: () = assert!(
    std::mem::size_of::<crate::http::fields::Entry>() == std::mem::size_of::<AbiFieldSpan>()
        && std::mem::align_of::<crate::http::fields::Entry>()
            == std::mem::align_of::<AbiFieldSpan>()
);

host_fn! {
    pub(super) fn headers_lend(raw: *mut c_void, which: u32, out: *mut AbiFieldList) = ();
    {
        let (text, entries) = map(req(raw), which).raw_parts();
        let list = AbiFieldList {
            text: AbiStr::new(text),
            // Same layout (`repr(C)`, three u32; checked above).
            spans: entries.as_ptr().cast::<AbiFieldSpan>(),
            count: entries.len(),
        };
        // SAFETY: `out` is writable, owned by the caller.
        unsafe { out.write(list) };
    }
}

host_fn! {
    pub(super) fn header_change(
        raw: *mut c_void,
        which: u32,
        mode: u32,
        name: AbiStr,
        value: AbiStr,
    ) -> i32 = code::ERROR;
    {
        let fields = map(req(raw), which);
        let (name, value) = (bytes(name), bytes(value));
        if !valid_name(name) {
            return code::ERROR;
        }
        if mode == hmap::REMOVE {
            fields.remove(name);
            return code::OK;
        }
        if !valid_value(value) {
            return code::ERROR;
        }
        if mode == hmap::ADD {
            fields.append(name, value);
        } else {
            fields.set(name, value);
        }
        code::OK
    }
}

host_fn! {
    pub(super) fn note_get(raw: *mut c_void, key: AbiStr, out: *mut AbiStr) -> bool = false;
    {
        let req = req(raw);
        match req.notes.get(&req.head.fields, bytes(key)) {
            Some(v) => {
                // SAFETY: `out` is writable, owned by the caller.
                unsafe { out.write(AbiStr::new(v)) };
                true
            }
            None => false,
        }
    }
}

host_fn! {
    pub(super) fn note_set(raw: *mut c_void, key: AbiStr, value: AbiStr) = ();
    {
        let req = req(raw);
        req.notes
            .set(&mut req.head.fields, bytes(key), bytes(value));
    }
}

host_fn! {
    pub(super) fn status_get(raw: *mut c_void) -> u16 = 500;
    {
        req(raw).status.as_u16()
    }
}

host_fn! {
    pub(super) fn status_set(raw: *mut c_void, status: u16) = ();
    {
        if let Ok(s) = http::StatusCode::from_u16(status) {
            req(raw).status = s;
        }
    }
}

host_fn! {
    pub(super) fn response_start(raw: *mut c_void) -> i32 = io::ERR_OTHER;
    {
        if req(raw).head_sent {
            return io::ERR_OTHER;
        }
        // ProxyPassReverse and friends get their last look at the head here.
        if let Some(registry) = frozen() {
            for hook in registry.hooks(HookKind::ResponseHeaders) {
                let rc = call_request_hook(hook, raw);
                if rc != code::OK && rc != code::DECLINED {
                    let name = &registry.modules[hook.module].name;
                    log::write(
                        Level::Error,
                        "core",
                        &format!("module {name} failed in response_headers (code {rc})"),
                    );
                }
            }
            start_filters_in(registry, raw);
        }
        let r = req(raw);
        r.head_sent = true;
        if may_splice_response(r) {
            r.splice_response = Some(Default::default());
        }
        io::READY
    }
}

host_fn! {
    pub(super) fn body_poll_read(
        raw: *mut c_void,
        waker: *const AbiWaker,
        out: *mut AbiChunk,
    ) -> i32 = io::ERR_OTHER;
    {
        let r = req(raw);
        let filtered = !r.input.chain.is_empty();
        loop {
            if filtered {
                if let Some(data) = r.input.ready.pop_front() {
                    // SAFETY: `out` is writable, owned by the caller.
                    unsafe { out.write(modproxy_api::chunk::from_bytes(data)) };
                    return io::READY;
                }
                if r.input.ended {
                    return io::READY; // the end: an empty chunk
                }
            }
            let got = match read_raw_chunk(r, waker) {
                Ok(got) => got,
                Err(rc) => return rc,
            };
            if !filtered {
                if let Some(data) = got {
                    // SAFETY: `out` is writable, owned by the caller.
                    unsafe { out.write(modproxy_api::chunk::from_bytes(data)) };
                }
                return io::READY;
            }
            let mut emitted = Vec::new();
            let ran = match got {
                Some(data) => r.input.chain.push(data, &mut emitted),
                None => {
                    r.input.ended = true;
                    r.input.chain.finish(&mut emitted)
                }
            };
            if let Err(f) = ran {
                // The body cannot be read further: nor can the connection.
                r.close = true;
                let module = crate::loader::filters::module_name(f.module);
                log::write(Level::Error, "core", &format!("module {module}: its input filter refused the request body"));
                return if f.too_large { io::ERR_TOO_LARGE } else { io::ERR_ABORTED };
            }
            r.input.ready.extend(emitted);
        }
    }
}

/// One chunk of the client's body as it arrives (`None` at its end), or
/// the code a read failed with; the limit applies to what the client sent.
fn read_raw_chunk(r: &mut RequestCtx, waker: *const AbiWaker) -> Result<Option<Bytes>, i32> {
    let polled = if let Some(wire) = r.wire.as_mut() {
        let may_continue = !r.head_sent;
        with_cx(waker, |cx| r.body.poll_chunk(wire, cx, may_continue))
    } else if let Some(stream) = r.stream_body.as_mut() {
        with_cx(waker, |cx| stream.poll_chunk(cx, &mut r.request_trailers))
    } else {
        return Err(io::ERR_OTHER);
    };
    match polled {
        Poll::Pending => Err(body_wait(r, waker)),
        Poll::Ready(Ok(None)) => Ok(None),
        Poll::Ready(Err(_)) => {
            // A body cut short or mis-framed leaves the connection's
            // framing unknown: it carries no further request.
            r.close = true;
            Err(io::ERR_ABORTED)
        }
        Poll::Ready(Ok(Some(data))) => {
            r.body_timer = None;
            r.body_read += data.len() as u64;
            if r.body_limit != 0 && r.body_read > r.body_limit {
                r.close = true;
                return Err(io::ERR_TOO_LARGE);
            }
            Ok(Some(data))
        }
    }
}

/// Timeout for a client that stops sending its body: the wait is armed
/// on the first Pending, reset by each piece, and ends in ERR_TIMEOUT.
pub(super) fn body_wait(r: &mut RequestCtx, waker: *const AbiWaker) -> i32 {
    if r.body_timeout.is_zero() {
        return io::PENDING;
    }
    let timeout = r.body_timeout;
    let timer = r
        .body_timer
        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    match with_cx(waker, |cx| timer.as_mut().poll(cx)) {
        Poll::Pending => io::PENDING,
        Poll::Ready(()) => {
            r.body_timer = None;
            io::ERR_TIMEOUT
        }
    }
}

host_fn! {
    pub(super) fn body_poll_ready(raw: *mut c_void, waker: *const AbiWaker) -> i32 = io::ERR_OTHER;
    {
        let r = req(raw);
        if !r.head_sent {
            return io::ERR_OTHER;
        }
        if r.pending_chunk.is_none() {
            if r.splice_held() > 0 {
                // The response body drains the pipe, then polls the
                // handler again: no wake needed.
                return io::PENDING;
            }
            return io::READY;
        }
        // The response body drains the slot before it polls the handler again.
        with_cx(waker, |cx| cx.waker().wake_by_ref());
        io::PENDING
    }
}

host_fn! {
    pub(super) fn body_send(raw: *mut c_void, chunk: AbiChunk) -> i32 = io::ERR_OTHER;
    {
        // SAFETY: modules make chunks with chunk::from_bytes.
        let data: Bytes = unsafe { modproxy_api::chunk::into_bytes(chunk) };
        let r = req(raw);
        if !r.head_sent || r.pending_chunk.is_some() || r.splice_held() > 0 {
            return io::ERR_OTHER;
        }
        if !data.is_empty() {
            r.pending_chunk = Some(data);
        }
        io::READY
    }
}

/// Builds the response's output filter chain (ABI 1.4) from the filters
/// that accept its head; costs one check when none is registered.
fn start_filters_in(registry: &Registry, raw: *mut c_void) {
    if registry.hooks(HookKind::OutputFilter).is_empty() {
        return;
    }
    let chain = crate::loader::filters::Chain::start(registry, HookKind::OutputFilter, raw);
    let r = req(raw);
    if !chain.is_empty() {
        // The filters change the body: the core frames it.
        r.response_headers.remove(b"content-length");
    }
    r.filters = chain;
}

/// The request body's input filters (ABI 1.5), from those that accept its
/// head; before any handler runs. One check when none is registered.
pub fn start_input_filters(raw: *mut c_void) {
    let Some(registry) = frozen() else { return };
    if registry.hooks(HookKind::InputFilter).is_empty() {
        return;
    }
    let chain = crate::loader::filters::Chain::start(registry, HookKind::InputFilter, raw);
    req(raw).input.chain = chain;
}

/// The output filters for a response the core answers itself (an error
/// page in place of a failed handler's): they see it as any other, so a
/// cache may answer with a stale copy instead (stale-if-error).
pub fn start_filters(raw: *mut c_void) {
    if let Some(registry) = frozen() {
        start_filters_in(registry, raw);
    }
}

/// Sends the response head on a module's behalf (a handler that returned
/// OK without sending it).
pub fn start_response(raw: *mut c_void) {
    response_start(raw);
}
