//! Declaring a module: the [`Module`] trait, the [`Registrar`] through
//! which it lists its hooks, providers and configuration sections (its
//! table of contents, like Apache's `register_hooks`), and the generated
//! `extern "C"` shims that catch every panic on the module's side.
//!
//! Registration is an explicit function rather than `inventory` items: a
//! `submit!` in a library the cdylib never references is silently dropped
//! (docs/architecture.md, "Facts the design rests on", 8), while a registration call cannot go missing.

use super::host::{host, install};
use super::request::Request;
use super::shim::{report_panic, shim_fn};
use crate::abi::{self, code, AbiFuture, AbiSection, AbiStr, HookKind, HostApi};
use serde::de::DeserializeOwned;
use std::ffi::c_void;
use std::future::Future;
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
type ConfigHook<M> = fn(&M) -> Result<(), ConfigError>;
type ChildHook<M> = fn(&'static M);
type SectionHook<M, T> = fn(&M, Section<T>) -> Result<(), ConfigError>;

/// A handler's future, as the shim needs it named.
pub trait StatusFuture: Future<Output = Status> + Send + 'static {}
impl<F: Future<Output = Status> + Send + 'static> StatusFuture for F {}

/// Why a module refused its configuration: one line per problem, each
/// starting with where it is (`FILE: KEY`) and saying what to do. Every
/// line reaches the operator (configtest lists them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl ConfigError {
    /// `Ok` when nothing was found wrong, else every problem.
    pub fn result(problems: Vec<String>) -> Result<(), ConfigError> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems })
        }
    }
}

impl From<String> for ConfigError {
    fn from(problem: String) -> Self {
        ConfigError {
            problems: vec![problem],
        }
    }
}
impl From<&str> for ConfigError {
    fn from(problem: &str) -> Self {
        ConfigError::from(problem.to_owned())
    }
}
impl From<Vec<String>> for ConfigError {
    fn from(problems: Vec<String>) -> Self {
        ConfigError { problems }
    }
}
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}
impl std::error::Error for ConfigError {}

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

    pub(crate) fn hook(
        &mut self,
        kind: HookKind,
        order: i32,
        func: *const c_void,
        data: *const c_void,
    ) {
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

    /// Runs once when the server process starts serving (never in
    /// configtest), on a runtime: start background tasks here with
    /// [`crate::sdk::net::spawn`] (Apache's child_init). ABI 1.3.
    pub fn child_init(&mut self, order: i32, f: ChildHook<M>) {
        let shim: abi::ChildInitFn = child_init_shim::<M>;
        self.hook(
            HookKind::ChildInit,
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

    /// Registers a provider whose table the caller built ([`Registrar::provider`]).
    pub(crate) fn provider_raw(
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

shim_fn! {
    fn sync_hook_shim<M: Module>(slot: *const c_void, req: *mut c_void) -> i32 = code::PANICKED;
    {
        // SAFETY: `slot` was made by Registrar::slot with this M and F; the
        // host passes a live request for the duration of the call.
        let (slot, mut req) = unsafe {
            (&*(slot as *const Slot<M, SyncHook<M>>), Request::from_raw(req))
        };
        (slot.f)(slot.module, &mut req).code()
    }

    fn handler_shim<M: Module, Fut: StatusFuture>(slot: *const c_void, req: *mut c_void) -> AbiFuture
        = AbiFuture::ready(code::PANICKED);
    {
        // SAFETY: as in sync_hook_shim; the host keeps the request alive
        // until it drops this future.
        let (slot, req) = unsafe {
            (&*(slot as *const Slot<M, AsyncHook<M, Fut>>), Request::from_raw(req))
        };
        match (slot.f)(slot.module, req) {
            None => AbiFuture::ready(code::DECLINED),
            // The handler's future moves into the one box `export` makes.
            Some(fut) => crate::future::export(fut, report_panic),
        }
    }

    fn post_config_shim<M: Module>(slot: *const c_void, errors: *mut c_void) -> i32 = code::PANICKED;
    {
        // SAFETY: as in sync_hook_shim.
        let slot = unsafe { &*(slot as *const Slot<M, ConfigHook<M>>) };
        verdict(errors, (slot.f)(slot.module))
    }

    fn child_init_shim<M: Module>(slot: *const c_void) -> i32 = code::PANICKED;
    {
        // SAFETY: as in sync_hook_shim.
        let slot = unsafe { &*(slot as *const Slot<M, ChildHook<M>>) };
        (slot.f)(slot.module);
        code::OK
    }

    fn section_shim<M: Module, T: DeserializeOwned>(
        slot: *const c_void,
        section: *const AbiSection,
        errors: *mut c_void,
    ) -> i32 = code::PANICKED;
    {
        // SAFETY: as in sync_hook_shim; the host passes a section whose
        // strings are valid for the call.
        let (slot, raw) = unsafe { (&*(slot as *const Slot<M, SectionHook<M, T>>), &*section) };
        // SAFETY: as above.
        let text = unsafe { SectionText::borrow(raw) };
        verdict(errors, section_impl(text, |s| (slot.f)(slot.module, s)))
    }

    /// The body of every module's init (called by [`crate::declare_module!`]).
    // Public because the macro expands in the module's crate; only the host
    // calls it, through the header, with its own table.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn init_shim<M: Module>(
        host_api: *const HostApi,
        reg: *mut c_void,
        errors: *mut c_void,
    ) -> *const c_void = std::ptr::null();
    {
        // SAFETY: the host passes its table, which lives as long as the process.
        let host_api: &'static HostApi = unsafe { &*host_api };
        if host_api.size < std::mem::size_of::<HostApi>() {
            // Too old a host: its table lacks functions we would call.
            (host_api.error_write)(errors, AbiStr::from_static("the host's service table is older than this module's SDK; rebuild the module against the host's modproxy-api"));
            return std::ptr::null();
        }
        install(host_api, M::NAME);
        init_impl::<M>(reg).unwrap_or_else(|e| {
            write_error(errors, &e);
            std::ptr::null()
        })
    }
}

/// Writes each problem of `result` to the host's error list.
fn verdict(errors: *mut c_void, result: Result<(), ConfigError>) -> i32 {
    match result {
        Ok(()) => code::OK,
        Err(e) => {
            e.problems.iter().for_each(|p| write_error(errors, p));
            code::ERROR
        }
    }
}

fn write_error(errors: *mut c_void, msg: &str) {
    (host().error_write)(errors, AbiStr::new(msg.as_bytes()));
}

/// A section as the host lends it, as text.
struct SectionText<'a> {
    path: std::borrow::Cow<'a, str>,
    vhost: i64,
    file: std::borrow::Cow<'a, str>,
    key: std::borrow::Cow<'a, str>,
    toml: std::borrow::Cow<'a, str>,
}

impl SectionText<'_> {
    /// # Safety
    /// The section's strings are valid for `'a`.
    unsafe fn borrow<'a>(raw: &AbiSection) -> SectionText<'a> {
        // SAFETY: guaranteed by the caller.
        unsafe {
            SectionText {
                path: raw.path.to_str_lossy(),
                vhost: raw.vhost,
                file: raw.file.to_str_lossy(),
                key: raw.key.to_str_lossy(),
                toml: raw.toml.to_str_lossy(),
            }
        }
    }
}

/// Reads a section into `T` and hands it to `apply`. Every problem serde
/// finds is reported, and what could be read still goes to the module, so
/// its own checks run in the same pass.
fn section_impl<T: DeserializeOwned>(
    text: SectionText<'_>,
    apply: impl FnOnce(Section<T>) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    // TOML cannot hold a bare array or value at the top, so sections
    // travel as `value = ...`.
    let value = text
        .toml
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("value"))
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    let at = format!("{}: {}", text.file, text.key);
    let (value, mut problems) = super::section::read::<T>(&at, value);
    if let Some(value) = value {
        let section = Section {
            path: text.path.into_owned(),
            vhost: usize::try_from(text.vhost).ok(),
            file: text.file.into_owned(),
            key: text.key.into_owned(),
            value,
        };
        if let Err(e) = apply(section) {
            problems.extend(e.problems);
        }
    }
    ConfigError::result(problems)
}

/// Builds the module and lets it register; the module's data pointer, or
/// why it refused.
fn init_impl<M: Module>(reg: *mut c_void) -> Result<*const c_void, String> {
    let module: &'static M = Box::leak(Box::new(M::init()?));
    let mut r = Registrar {
        raw: reg,
        module,
        errors: Vec::new(),
    };
    M::register(&mut r);
    if !r.errors.is_empty() {
        return Err(r.errors.join("; "));
    }
    Ok(module as *const M as *const c_void)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        #[allow(dead_code)]
        timeout: u32,
    }

    fn text(toml: &str) -> SectionText<'_> {
        SectionText {
            path: Cow::Borrowed("vhost.test"),
            vhost: 0,
            file: Cow::Borrowed("modproxy.toml"),
            key: Cow::Borrowed("vhost[0].test"),
            toml: Cow::Borrowed(toml),
        }
    }

    /// The module's own problems and serde's come back together, each
    /// naming where it is; a section serde cannot read never reaches it.
    #[test]
    fn a_section_reports_every_problem_and_reaches_the_module_when_readable() {
        let ok = section_impl::<Conf>(text("value = { timeout = 5 }"), |s| {
            assert_eq!((s.vhost, s.key.as_str()), (Some(0), "vhost[0].test"));
            Ok(())
        });
        assert_eq!(ok, Ok(()));

        let refused = section_impl::<Conf>(text("value = { timeout = 5 }"), |_| {
            Err(ConfigError::from(vec![
                "first".to_owned(),
                "second".to_owned(),
            ]))
        });
        assert_eq!(refused.unwrap_err().problems, ["first", "second"]);

        let unreadable = section_impl::<Conf>(text("value = { timeout = \"x\" }"), |_| {
            panic!("an unreadable section must not reach the module")
        });
        let problems = unreadable.unwrap_err().problems;
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("modproxy.toml: vhost[0].test.timeout"),
            "{problems:?}"
        );
    }
}
