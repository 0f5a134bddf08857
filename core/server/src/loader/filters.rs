//! The filter chain of one body: a response's output filters (ABI 1.4)
//! or a request's input filters (1.5), those whose `start` accepted its
//! head, in order, each with its state. A chunk goes through them all;
//! what the last one emits goes on (to the client, or to the handler that
//! reads the request body). A body no filter took part in has an empty
//! chain, and costs one check per chunk.

use super::registry::{Hook, Registry};
use bytes::Bytes;
use modproxy_api::abi::filter::{filter_code, EmitFn, OutputFilterV1, MAX_EMIT_PER_CHUNK};
use modproxy_api::abi::{AbiChunk, HookKind};
use std::ffi::c_void;

type BodyFn = extern "C" fn(*const c_void, *mut c_void, AbiChunk, EmitFn, *mut c_void) -> i32;
type FinishFn = extern "C" fn(*const c_void, *mut c_void, EmitFn, *mut c_void) -> i32;
type DropFn = extern "C" fn(*const c_void, *mut c_void);

/// One filter taking part in one response.
struct Active {
    module: usize,
    data: *const c_void,
    state: *mut c_void,
    body: BodyFn,
    finish: FinishFn,
    drop_state: DropFn,
    /// It ended the body (or finished): it takes no more chunks.
    ended: bool,
}

impl Drop for Active {
    fn drop(&mut self) {
        (self.drop_state)(self.data, self.state);
    }
}

/// The chain; empty for most responses.
#[derive(Default)]
pub struct Chain {
    filters: Vec<Active>,
}

// SAFETY: a filter's state is `Send` by the SDK's trait bound, its data
// `Sync`; a chain is used by one response at a time.
unsafe impl Send for Chain {}

/// Which module's filter failed, and whether it said the body grew too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub module: usize,
    pub too_large: bool,
}

/// What a filter emitted for one call.
struct Collected {
    chunks: Vec<Bytes>,
    bytes: usize,
}

extern "C" fn collect(ud: *mut c_void, chunk: AbiChunk) {
    // SAFETY: `ud` is the Collected of the call in progress; modules make
    // chunks with chunk::from_bytes.
    let (c, data) = unsafe {
        (
            &mut *(ud as *mut Collected),
            modproxy_api::chunk::into_bytes(chunk),
        )
    };
    c.bytes += data.len();
    c.chunks.push(data);
}

impl Chain {
    /// Asks every filter of `kind` (OutputFilter or InputFilter), in
    /// order, whether it takes part in this body of `req` (its head is
    /// still open to changes).
    pub fn start(registry: &Registry, kind: HookKind, req: *mut c_void) -> Chain {
        let mut filters = Vec::new();
        for hook in registry.hooks(kind) {
            if let Some(active) = start_one(hook, req) {
                filters.push(active);
            }
        }
        Chain { filters }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    fn failure(&self, i: usize, code: i32) -> Failure {
        Failure {
            module: self.filters[i].module,
            too_large: code == filter_code::TOO_LARGE,
        }
    }

    /// Runs `chunk` through the chain; what comes out is appended to `out`.
    /// `Err` names the module whose filter failed.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) -> Result<(), Failure> {
        self.run_from(0, vec![chunk], out)
    }

    /// The body is complete: each filter in turn emits what it held back,
    /// through the filters after it.
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> Result<(), Failure> {
        for i in 0..self.filters.len() {
            if self.filters[i].ended {
                continue;
            }
            let held = self.call_finish(i)?;
            self.run_from(i + 1, held, out)?;
        }
        Ok(())
    }

    fn run_from(
        &mut self,
        first: usize,
        mut input: Vec<Bytes>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), Failure> {
        for i in first..self.filters.len() {
            if self.filters[i].ended {
                return Ok(());
            }
            let mut next = Vec::new();
            for chunk in input {
                let (emitted, code) = self.call_body(i, chunk);
                next.extend(emitted?);
                match code {
                    filter_code::CONTINUE => {}
                    filter_code::END => {
                        // The rest of the body is dropped here; what it
                        // held back still goes on.
                        let held = self.call_finish(i)?;
                        next.extend(held);
                        break;
                    }
                    code => return Err(self.failure(i, code)),
                }
            }
            input = next;
        }
        out.extend(input);
        Ok(())
    }

    fn call_body(&mut self, i: usize, chunk: Bytes) -> (Result<Vec<Bytes>, Failure>, i32) {
        let f = &self.filters[i];
        let mut c = Collected {
            chunks: Vec::new(),
            bytes: 0,
        };
        let rc = (f.body)(
            f.data,
            f.state,
            modproxy_api::chunk::from_bytes(chunk),
            collect,
            &mut c as *mut Collected as *mut c_void,
        );
        (self.bounded(i, c), rc)
    }

    fn call_finish(&mut self, i: usize) -> Result<Vec<Bytes>, Failure> {
        let f = &mut self.filters[i];
        f.ended = true;
        let mut c = Collected {
            chunks: Vec::new(),
            bytes: 0,
        };
        let rc = (f.finish)(
            f.data,
            f.state,
            collect,
            &mut c as *mut Collected as *mut c_void,
        );
        if rc != filter_code::CONTINUE && rc != filter_code::END {
            return Err(self.failure(i, rc));
        }
        self.bounded(i, c)
    }

    /// A filter may not make the core buffer without bound.
    fn bounded(&self, i: usize, c: Collected) -> Result<Vec<Bytes>, Failure> {
        if c.bytes > MAX_EMIT_PER_CHUNK {
            return Err(self.failure(i, filter_code::FAILED));
        }
        Ok(c.chunks)
    }
}

/// The name of module `index`, for messages about its filter.
pub fn module_name(index: usize) -> String {
    super::registry::frozen()
        .and_then(|r| r.modules.get(index))
        .map_or_else(|| "?".to_owned(), |m| m.name.clone())
}

fn start_one(hook: &Hook, req: *mut c_void) -> Option<Active> {
    let table = hook.func as *const OutputFilterV1;
    // SAFETY: registered for HookKind::OutputFilter or InputFilter by the
    // SDK's register_filter / register_input_filter: `func` is a table that
    // lives as long as the process, whose every entry exists since 1.4
    // introduced it.
    let (start, body, finish, drop_state) = unsafe {
        (
            (*table).start,
            (*table).body,
            (*table).finish,
            (*table).drop_state,
        )
    };
    let state = start(hook.data, req);
    (!state.is_null()).then_some(Active {
        module: hook.module,
        data: hook.data,
        state,
        body,
        finish,
        drop_state,
        ended: false,
    })
}
