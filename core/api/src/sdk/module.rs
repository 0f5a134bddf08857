//! Declaring a module: the [`Module`] trait, the [`Registrar`] through
//! which it lists its hooks, providers and configuration sections (its
//! table of contents, like Apache's `register_hooks`), and the generated
//! `extern "C"` shims that catch every panic on the module's side.
//!
//! Registration is an explicit function rather than `inventory` items: a
//! `submit!` in a library the cdylib never references is silently dropped
//! (docs/architecture.md, "Facts the design rests on", 8), while a registration call cannot go missing.

use super::host::{host, install, log, module_name, Level};
use super::request::Request;
use crate::abi::{self, code, AbiFuture, AbiSection, AbiStr, HookKind, HostApi};
use crate::future::panic_message;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;

/// What a hook decided (Apache's OK / DECLINED / HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done with this phase (run-first hooks stop the phase here).
    Ok,
    /// Not mine; let the next module have it.
    Declined,
    /// End the request with this HTTP status.
    Http(u16),
}

impl Status {
    pub(crate) fn code(self) -> i32 {
        match self {
            Status::Ok => code::OK,
            Status::Declined => code::DECLINED,
            Status::Http(s) => i32::from(s),
        }
    }
}

impl crate::future::IntoCode for Status {
    fn into_code(self) -> i32 {
        self.code()
    }
}

/// A boxed handler future. A handler may return any `Send` future instead
/// (an `async` block): the SDK boxes it once as it crosses the boundary,
/// where a `HandlerFuture` costs a second allocation.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Status> + Send>>;

/// A module: built once at load, then shared by all worker threads.
pub trait Module: Sized + Send + Sync + 'static {
    /// The name operators use (`modproxy enmod NAME`).
    const NAME: &'static str;
    /// Builds the module. An error refuses the module at load, with this message.
    fn init() -> Result<Self, String>;
    /// Lists the module's hooks, providers and configuration sections.
    fn register(r: &mut Registrar<Self>);
}

/// A configuration section handed to the module, deserialized with serde.
pub struct Section<T> {
    /// The claim, e.g. `vhost.proxy`.
    pub path: String,
    /// The virtual host index, or `None` for a server-wide section.
    pub vhost: Option<usize>,
    /// The file the section came from.
    pub file: String,
    /// Where it sits in that file, e.g. `vhost[0].proxy`: start error messages with it.
    pub key: String,
    pub value: T,
}

/// Collects a module's registrations during init.
pub struct Registrar<M: 'static> {
    raw: *mut c_void,
    module: &'static M,
    errors: Vec<String>,
}

type SyncHook<M> = fn(&M, &mut Request) -> Status;
type AsyncHook<M, Fut> = fn(&'static M, Request) -> Option<Fut>;
type ConfigHook<M> = fn(&M) -> Result<(), String>;
type SectionHook<M, T> = fn(&M, Section<T>) -> Result<(), String>;

/// What a shim needs: the module and the author's function.
pub(crate) struct Slot<M: 'static, F> {
    pub(crate) module: &'static M,
    pub(crate) f: F,
}

impl<M: Module> Registrar<M> {
    /// The module instance, for providers registered with their own state.
    pub fn module(&self) -> &'static M {
        self.module
    }

    fn slot<F>(&self, f: F) -> *const c_void {
        // Leaked on purpose: modules live as long as the process.
        Box::into_raw(Box::new(Slot {
            module: self.module,
            f,
        })) as *const c_void
    }

    fn record(&mut self, what: &str, rc: i32) {
        if rc != 0 {
            self.errors
                .push(format!("the host refused registration of {what}"));
        }
    }

    fn hook(&mut self, kind: HookKind, order: i32, func: *const c_void, data: *const c_void) {
        let rc = (host().register_hook)(self.raw, kind as u32, order, func, data);
        self.record(kind.name(), rc);
    }

    /// A synchronous request hook (any kind but `Handler` and `PostConfig`).
    pub fn request_hook(&mut self, kind: HookKind, order: i32, f: SyncHook<M>) {
        assert!(
            !matches!(kind, HookKind::Handler | HookKind::PostConfig),
            "use handler() or post_config() for {}",
            kind.name()
        );
        let shim: abi::RequestHookFn = sync_hook_shim::<M>;
        self.hook(kind, order, shim as *const c_void, self.slot(f));
    }

    /// The handler: return `None` to decline, or the future producing the
    /// response (an `async` block, or a [`HandlerFuture`]).
    pub fn handler<Fut>(&mut self, order: i32, f: AsyncHook<M, Fut>)
    where
        Fut: Future<Output = Status> + Send + 'static,
    {
        let shim: abi::HandlerHookFn = handler_shim::<M, Fut>;
        self.hook(
            HookKind::Handler,
            order,
            shim as *const c_void,
            self.slot(f),
        );
    }

    /// Runs once all sections were handed out: check wiring between modules.
    pub fn post_config(&mut self, order: i32, f: ConfigHook<M>) {
        let shim: abi::PostConfigFn = post_config_shim::<M>;
        self.hook(
            HookKind::PostConfig,
            order,
            shim as *const c_void,
            self.slot(f),
        );
    }

    /// Claims a configuration table (e.g. `vhost.proxy`); each occurrence is
    /// deserialized into `T` and handed to `f`.
    pub fn section<T: DeserializeOwned + 'static>(
        &mut self,
        path: &'static str,
        f: SectionHook<M, T>,
    ) {
        let rc = (host().claim_section)(
            self.raw,
            AbiStr::from_static(path),
            section_shim::<M, T>,
            self.slot(f),
        );
        self.record(path, rc);
    }

    /// Registers a provider whose vtable the caller built (see `proxy`, `lb`).
    pub fn provider_raw(
        &mut self,
        group: &'static str,
        name: &str,
        version: u32,
        vtable: *const c_void,
        data: *const c_void,
    ) {
        let rc = (host().register_provider)(
            self.raw,
            AbiStr::from_static(group),
            AbiStr::new(name.as_bytes()),
            version,
            vtable,
            data,
        );
        self.record(&format!("provider {group}:{name}"), rc);
    }
}

/// Logs a panic caught on this side, naming the module.
pub(crate) fn report_panic(payload: &(dyn Any + Send)) {
    log(
        Level::Error,
        format_args!(
            "panic in module {}: {}",
            module_name(),
            panic_message(payload)
        ),
    );
}

/// Runs `f`, turning a panic into `on_panic` after logging it.
pub(crate) fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            report_panic(&*payload);
            on_panic
        }
    }
}

extern "C" fn sync_hook_shim<M: Module>(slot: *const c_void, req: *mut c_void) -> i32 {
    // SAFETY: `slot` was made by Registrar::slot with this M and F.
    let slot = unsafe { &*(slot as *const Slot<M, SyncHook<M>>) };
    guard(code::PANICKED, || {
        // SAFETY: the host passes a live request for the duration of the call.
        let mut req = unsafe { Request::from_raw(req) };
        (slot.f)(slot.module, &mut req).code()
    })
}

extern "C" fn handler_shim<M, Fut>(slot: *const c_void, req: *mut c_void) -> AbiFuture
where
    M: Module,
    Fut: Future<Output = Status> + Send + 'static,
{
    // SAFETY: as in sync_hook_shim.
    let slot = unsafe { &*(slot as *const Slot<M, AsyncHook<M, Fut>>) };
    guard(AbiFuture::ready(code::PANICKED), || {
        // SAFETY: the host keeps the request alive until it drops this future.
        let req = unsafe { Request::from_raw(req) };
        match (slot.f)(slot.module, req) {
            None => AbiFuture::ready(code::DECLINED),
            // The handler's future moves into the one box `export` makes.
            Some(fut) => crate::future::export(fut, report_panic),
        }
    })
}

fn write_error(errors: *mut c_void, msg: &str) {
    (host().error_write)(errors, AbiStr::new(msg.as_bytes()));
}

extern "C" fn post_config_shim<M: Module>(slot: *const c_void, errors: *mut c_void) -> i32 {
    // SAFETY: as in sync_hook_shim.
    let slot = unsafe { &*(slot as *const Slot<M, ConfigHook<M>>) };
    guard(code::PANICKED, || match (slot.f)(slot.module) {
        Ok(()) => code::OK,
        Err(msg) => {
            write_error(errors, &msg);
            code::ERROR
        }
    })
}

extern "C" fn section_shim<M: Module, T: DeserializeOwned>(
    slot: *const c_void,
    section: *const AbiSection,
    errors: *mut c_void,
) -> i32 {
    // SAFETY: as in sync_hook_shim.
    let slot = unsafe { &*(slot as *const Slot<M, SectionHook<M, T>>) };
    guard(code::PANICKED, || {
        // SAFETY: the host passes a valid section for the call.
        let raw = unsafe { &*section };
        // SAFETY: the section's strings are valid for the call.
        let (path, file, key, text) = unsafe {
            (
                raw.path.to_str_lossy(),
                raw.file.to_str_lossy(),
                raw.key.to_str_lossy(),
                raw.toml.to_str_lossy(),
            )
        };
        // TOML cannot hold a bare array or value at the top, so sections
        // travel as `value = ...`.
        let value = text
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("value"))
            .unwrap_or(toml::Value::Table(toml::Table::new()));
        // Every problem serde finds is reported, and what could be read
        // still goes to the module, so its own checks run in the same pass.
        let (value, problems) = super::section::read::<T>(&format!("{file}: {key}"), value);
        problems.iter().for_each(|p| write_error(errors, p));
        let Some(value) = value else {
            return code::ERROR;
        };
        let section = Section {
            path: path.into_owned(),
            vhost: usize::try_from(raw.vhost).ok(),
            file: file.into_owned(),
            key: key.into_owned(),
            value,
        };
        let verdict = (slot.f)(slot.module, section);
        if let Err(msg) = &verdict {
            write_error(errors, msg);
        }
        if verdict.is_ok() && problems.is_empty() {
            code::OK
        } else {
            code::ERROR
        }
    })
}

/// The body of every module's init (called by [`crate::declare_module!`]).
// Public because the macro expands in the module's crate; only the host
// calls it, through the header, with its own table.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub extern "C" fn init_shim<M: Module>(
    host_api: *const HostApi,
    reg: *mut c_void,
    errors: *mut c_void,
) -> *const c_void {
    // SAFETY: the host passes its table, which lives as long as the process.
    let host_api: &'static HostApi = unsafe { &*host_api };
    if host_api.size < std::mem::size_of::<HostApi>() {
        // Too old a host: its table lacks functions we would call.
        (host_api.error_write)(errors, AbiStr::from_static("the host's service table is older than this module's SDK; rebuild the module against the host's modproxy-api"));
        return std::ptr::null();
    }
    install(host_api, M::NAME);
    guard(std::ptr::null(), || {
        let module: &'static M = match M::init() {
            Ok(m) => Box::leak(Box::new(m)),
            Err(msg) => {
                write_error(errors, &msg);
                return std::ptr::null();
            }
        };
        let mut r = Registrar {
            raw: reg,
            module,
            errors: Vec::new(),
        };
        M::register(&mut r);
        if !r.errors.is_empty() {
            write_error(errors, &r.errors.join("; "));
            return std::ptr::null();
        }
        module as *const M as *const c_void
    })
}

/// Exports `$module` (a type implementing [`Module`]) as a modproxy module.
#[macro_export]
macro_rules! declare_module {
    ($module:ty) => {
        /// The entry point the modproxy loader looks up. (`no_mangle` is
        /// an unsafe attribute, but the lint does not fire in code from
        /// another crate's macro, so a module can `forbid(unsafe_code)`.)
        #[no_mangle]
        pub extern "C" fn modproxy_module_entry_v1() -> *const $crate::abi::ModuleHeader {
            static HEADER: $crate::abi::ModuleHeader = $crate::abi::ModuleHeader {
                magic: $crate::abi::MAGIC,
                abi_version: $crate::abi::ABI_VERSION,
                layout_hash: $crate::abi::LAYOUT_HASH,
                name: $crate::abi::AbiStr::from_static(<$module as $crate::sdk::Module>::NAME),
                version: $crate::abi::AbiStr::from_static(env!("CARGO_PKG_VERSION")),
                init: $crate::sdk::module::init_shim::<$module>,
            };
            &HEADER
        }
    };
}
