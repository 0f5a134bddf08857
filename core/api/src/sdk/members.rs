//! The members family, safe side (ABI 1.6): [`MemberTable`] is what
//! proxy_balancer implements (its sources, a place to hand over each
//! discovered member set, the stale mark, and manager changes from the
//! store), [`MembersHandle`] how a source module (proxy_discovery) reaches
//! it. The other way, [`MemberSync`] is what the source module implements
//! and [`MemberSyncHandle`] how proxy_balancer tells it about a change its
//! own balancer manager made. The C face is [`crate::abi::members`].
//!
//! Every call may come from any thread.

pub use crate::abi::members::{MEMBERS_GROUP, MEMBERS_NAME, SYNC_GROUP, SYNC_NAME};

use crate::abi::members::{
    apply_code, source_kind, MemberSettings, MemberSource, MemberSpec, MemberSyncV1, MembersV1,
};
use crate::abi::AbiStr;
use crate::sdk::module::Registrar;
use crate::sdk::provider;
use crate::sdk::shim::shim_fn;
use crate::sdk::Module;
use std::ffi::c_void;

/// Which balancer key named a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `discovery = {…}`.
    Discovery,
    /// `manager_sync = {…}`.
    ManagerSync,
}

/// One balancer's source, as its config wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub balancer: String,
    pub kind: SourceKind,
    /// The key's value as JSON.
    pub config: String,
    /// Where the key is (`FILE: KEY`).
    pub at: String,
}

/// One discovered member: where it came from, and its keys as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub origin: String,
    pub json: String,
}

/// A member's operator settings (what the balancer manager changes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub loadfactor: u32,
    pub lbset: u32,
    pub route: String,
    /// The operator's flags, e.g. `+D+N`.
    pub status: String,
}

/// Why a change from the store was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyError {
    /// No member by that URL (yet).
    NoSuchMember,
    /// Not valid for the member; the balancer logged why.
    Invalid,
}

/// Implemented by proxy_balancer.
pub trait MemberTable: Send + Sync + 'static {
    /// Every balancer key that names a source.
    fn sources(&self) -> Vec<Source>;
    /// Replaces `balancer`'s discovered members; how many were refused.
    fn set_members(&self, balancer: &str, specs: &[Spec]) -> u32;
    /// `Some((unix, reason))`: the source is unreachable since then;
    /// `None`: reachable again.
    fn set_stale(&self, balancer: &str, stale: Option<(u64, &str)>);
    /// A manager change another node made (read from the store).
    fn apply_settings(
        &self,
        balancer: &str,
        url: &str,
        settings: &Settings,
    ) -> Result<(), ApplyError>;
}

/// Implemented by the source module.
pub trait MemberSync: Send + Sync + 'static {
    /// This node's balancer manager changed member `url` of `balancer`.
    fn changed(&self, balancer: &str, url: &str, settings: &Settings);
}

fn str_arg<'a>(s: AbiStr) -> std::borrow::Cow<'a, str> {
    // SAFETY: the caller passes a string valid for the duration of the call.
    unsafe { s.to_str_lossy() }
}

fn settings_from(raw: &MemberSettings) -> Settings {
    Settings {
        loadfactor: raw.loadfactor,
        lbset: raw.lbset,
        route: str_arg(raw.route).into_owned(),
        status: str_arg(raw.status).into_owned(),
    }
}

fn settings_raw(s: &Settings) -> MemberSettings {
    MemberSettings {
        loadfactor: s.loadfactor,
        lbset: s.lbset,
        route: AbiStr::new(s.route.as_bytes()),
        status: AbiStr::new(s.status.as_bytes()),
    }
}

shim_fn! {
    fn visit_sources<T: MemberTable>(
        data: *const c_void,
        visitor: extern "C" fn(*mut c_void, *const MemberSource),
        ud: *mut c_void,
    ) = ();
    {
        // SAFETY: `data` is the &'static T registered in register_members.
        let t = unsafe { &*(data as *const T) };
        for s in t.sources() {
            let raw = MemberSource {
                balancer: AbiStr::new(s.balancer.as_bytes()),
                kind: match s.kind {
                    SourceKind::Discovery => source_kind::DISCOVERY,
                    SourceKind::ManagerSync => source_kind::MANAGER_SYNC,
                },
                config: AbiStr::new(s.config.as_bytes()),
                at: AbiStr::new(s.at.as_bytes()),
            };
            visitor(ud, &raw);
        }
    }

    fn set_members_shim<T: MemberTable>(
        data: *const c_void,
        balancer: AbiStr,
        specs: *const MemberSpec,
        n: usize,
    ) -> u32 = u32::try_from(n).unwrap_or(u32::MAX);
    {
        // SAFETY: as in visit_sources; `specs` points to `n` specs valid
        // for the call (or is dangling with n == 0).
        let (t, raw) = unsafe {
            let raw = if n == 0 { &[][..] } else { std::slice::from_raw_parts(specs, n) };
            (&*(data as *const T), raw)
        };
        let specs: Vec<Spec> = raw
            .iter()
            .map(|s| Spec { origin: str_arg(s.origin).into_owned(), json: str_arg(s.json).into_owned() })
            .collect();
        t.set_members(&str_arg(balancer), &specs)
    }

    fn set_stale_shim<T: MemberTable>(
        data: *const c_void,
        balancer: AbiStr,
        since_unix: u64,
        reason: AbiStr,
    ) = ();
    {
        // SAFETY: as in visit_sources.
        let t = unsafe { &*(data as *const T) };
        let reason = str_arg(reason);
        let stale = (since_unix != 0).then_some((since_unix, &*reason));
        t.set_stale(&str_arg(balancer), stale)
    }

    fn apply_settings_shim<T: MemberTable>(
        data: *const c_void,
        balancer: AbiStr,
        url: AbiStr,
        settings: *const MemberSettings,
    ) -> i32 = apply_code::INVALID;
    {
        // SAFETY: as in visit_sources; `settings` is valid for the call.
        let (t, raw) = unsafe { (&*(data as *const T), &*settings) };
        match t.apply_settings(&str_arg(balancer), &str_arg(url), &settings_from(raw)) {
            Ok(()) => apply_code::OK,
            Err(ApplyError::NoSuchMember) => apply_code::NO_SUCH_MEMBER,
            Err(ApplyError::Invalid) => apply_code::INVALID,
        }
    }

    fn changed_shim<S: MemberSync>(
        data: *const c_void,
        balancer: AbiStr,
        url: AbiStr,
        settings: *const MemberSettings,
    ) = ();
    {
        // SAFETY: `data` is the &'static S registered in
        // register_member_sync; `settings` is valid for the call.
        let (s, raw) = unsafe { (&*(data as *const S), &*settings) };
        s.changed(&str_arg(balancer), &str_arg(url), &settings_from(raw))
    }
}

/// Registers proxy_balancer's member interface.
pub fn register_members<M: Module, T: MemberTable>(r: &mut Registrar<M>, table: &'static T) {
    let vtable = MembersV1 {
        size: std::mem::size_of::<MembersV1>(),
        visit_sources: visit_sources::<T>,
        set_members: set_members_shim::<T>,
        set_stale: set_stale_shim::<T>,
        apply_settings: apply_settings_shim::<T>,
    };
    r.provider(MEMBERS_GROUP, MEMBERS_NAME, vtable, table);
}

/// Registers a source module's sync interface.
pub fn register_member_sync<M: Module, S: MemberSync>(r: &mut Registrar<M>, sync: &'static S) {
    let vtable = MemberSyncV1 {
        size: std::mem::size_of::<MemberSyncV1>(),
        changed: changed_shim::<S>,
    };
    r.provider(SYNC_GROUP, SYNC_NAME, vtable, sync);
}

/// proxy_balancer's member interface as a source module sees it.
#[derive(Clone, Copy)]
pub struct MembersHandle {
    data: *const c_void,
    visit_sources: VisitFn,
    set_members: SetMembersFn,
    set_stale: SetStaleFn,
    apply_settings: ApplyFn,
}

type VisitFn =
    extern "C" fn(*const c_void, extern "C" fn(*mut c_void, *const MemberSource), *mut c_void);
type SetMembersFn = extern "C" fn(*const c_void, AbiStr, *const MemberSpec, usize) -> u32;
type SetStaleFn = extern "C" fn(*const c_void, AbiStr, u64, AbiStr);
type ApplyFn = extern "C" fn(*const c_void, AbiStr, AbiStr, *const MemberSettings) -> i32;
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for MembersHandle {}
// SAFETY: as above.
unsafe impl Sync for MembersHandle {}

impl MembersHandle {
    pub fn lookup() -> Option<MembersHandle> {
        let p = provider::lookup(MEMBERS_GROUP, MEMBERS_NAME)?;
        let t = p.vtable as *const MembersV1;
        // SAFETY: registered by register_members; every entry has been in
        // the table since it first appeared (1.6). Copied out, so no
        // reference to the table is made (a later minor may append).
        let (visit_sources, set_members, set_stale, apply_settings) = unsafe {
            (
                (*t).visit_sources,
                (*t).set_members,
                (*t).set_stale,
                (*t).apply_settings,
            )
        };
        Some(MembersHandle {
            data: p.data,
            visit_sources,
            set_members,
            set_stale,
            apply_settings,
        })
    }

    pub fn sources(&self) -> Vec<Source> {
        extern "C" fn collect(ud: *mut c_void, s: *const MemberSource) {
            // SAFETY: `ud` is the Vec below; `s` is borrowed for this call.
            let (out, s) = unsafe { (&mut *(ud as *mut Vec<Source>), &*s) };
            out.push(Source {
                balancer: str_arg(s.balancer).into_owned(),
                kind: if s.kind == source_kind::MANAGER_SYNC {
                    SourceKind::ManagerSync
                } else {
                    SourceKind::Discovery
                },
                config: str_arg(s.config).into_owned(),
                at: str_arg(s.at).into_owned(),
            });
        }
        let mut out: Vec<Source> = Vec::new();
        (self.visit_sources)(
            self.data,
            collect,
            &mut out as *mut Vec<Source> as *mut c_void,
        );
        out
    }

    /// Hands over `balancer`'s whole discovered set; how many were refused.
    pub fn set_members(&self, balancer: &str, specs: &[Spec]) -> u32 {
        let raw: Vec<MemberSpec> = specs
            .iter()
            .map(|s| MemberSpec {
                origin: AbiStr::new(s.origin.as_bytes()),
                json: AbiStr::new(s.json.as_bytes()),
            })
            .collect();
        (self.set_members)(
            self.data,
            AbiStr::new(balancer.as_bytes()),
            raw.as_ptr(),
            raw.len(),
        )
    }

    pub fn set_stale(&self, balancer: &str, stale: Option<(u64, &str)>) {
        let (since, reason) = stale.map_or((0, ""), |(t, r)| (t.max(1), r));
        (self.set_stale)(
            self.data,
            AbiStr::new(balancer.as_bytes()),
            since,
            AbiStr::new(reason.as_bytes()),
        )
    }

    pub fn apply_settings(
        &self,
        balancer: &str,
        url: &str,
        settings: &Settings,
    ) -> Result<(), ApplyError> {
        let raw = settings_raw(settings);
        match (self.apply_settings)(
            self.data,
            AbiStr::new(balancer.as_bytes()),
            AbiStr::new(url.as_bytes()),
            &raw,
        ) {
            apply_code::OK => Ok(()),
            apply_code::NO_SUCH_MEMBER => Err(ApplyError::NoSuchMember),
            _ => Err(ApplyError::Invalid),
        }
    }
}

/// A source module's sync interface as proxy_balancer sees it.
#[derive(Clone, Copy)]
pub struct MemberSyncHandle {
    data: *const c_void,
    changed: extern "C" fn(*const c_void, AbiStr, AbiStr, *const MemberSettings),
}
// SAFETY: providers are Send + Sync by their traits and live forever.
unsafe impl Send for MemberSyncHandle {}
// SAFETY: as above.
unsafe impl Sync for MemberSyncHandle {}

impl MemberSyncHandle {
    pub fn lookup() -> Option<MemberSyncHandle> {
        let p = provider::lookup(SYNC_GROUP, SYNC_NAME)?;
        // SAFETY: registered by register_member_sync; `changed` has been
        // in the table since it first appeared (1.6).
        let changed = unsafe { (*(p.vtable as *const MemberSyncV1)).changed };
        Some(MemberSyncHandle {
            data: p.data,
            changed,
        })
    }

    pub fn changed(&self, balancer: &str, url: &str, settings: &Settings) {
        let raw = settings_raw(settings);
        (self.changed)(
            self.data,
            AbiStr::new(balancer.as_bytes()),
            AbiStr::new(url.as_bytes()),
            &raw,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_cross_the_boundary_unchanged() {
        let s = Settings {
            loadfactor: 7,
            lbset: 2,
            route: "r1".into(),
            status: "+D+N".into(),
        };
        assert_eq!(settings_from(&settings_raw(&s)), s);
    }
}
