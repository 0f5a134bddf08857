//! Host services used while a module registers: hooks, providers,
//! configuration sections, and provider lookups.

use super::*;

/// What a module's init registers into.
pub struct RegCtx<'a> {
    pub registry: &'a mut Registry,
    pub module: usize,
}

fn reg<'a>(raw: *mut c_void) -> &'a mut RegCtx<'a> {
    // SAFETY: `raw` is the RegCtx the loader passes to init, alive for it.
    unsafe { &mut *(raw as *mut RegCtx) }
}

host_fn! {
    pub(super) fn register_hook(
        raw: *mut c_void,
        hook: u32,
        order: i32,
        func: *const c_void,
        data: *const c_void,
    ) -> i32 = code::ERROR;
    {
        let Some(kind) = HookKind::from_u32(hook) else {
            return code::ERROR;
        };
        if func.is_null() {
            return code::ERROR;
        }
        let r = reg(raw);
        r.registry.add_hook(
            kind,
            Hook {
                module: r.module,
                order,
                func,
                data,
            },
        );
        code::OK
    }
}

host_fn! {
    pub(super) fn register_provider(
        raw: *mut c_void,
        group: AbiStr,
        name: AbiStr,
        version: u32,
        vtable: *const c_void,
        data: *const c_void,
    ) -> i32 = code::ERROR;
    {
        let r = reg(raw);
        let key = (text(group).into_owned(), text(name).into_owned());
        if r.registry.providers.contains_key(&key) {
            // Two modules offering the same provider is a configuration mistake.
            return code::ERROR;
        }
        let provider = Provider {
            module: r.module,
            raw: AbiProvider {
                vtable,
                data,
                version,
            },
        };
        r.registry.providers.insert(key, provider);
        code::OK
    }
}

host_fn! {
    pub(super) fn claim_section(
        raw: *mut c_void,
        path: AbiStr,
        func: SectionFn,
        data: *const c_void,
    ) -> i32 = code::ERROR;
    {
        let r = reg(raw);
        let path = text(path).into_owned();
        if r.registry.claims.iter().any(|c| c.path == path) {
            return code::ERROR;
        }
        r.registry.claims.push(Claim {
            module: r.module,
            path,
            func,
            data,
        });
        code::OK
    }
}

host_fn! {
    pub(super) fn lookup_provider(
        group: AbiStr,
        name: AbiStr,
        out: *mut AbiProvider,
    ) -> bool = false;
    {
        let Some(registry) = frozen() else {
            return false;
        };
        let key = (text(group).into_owned(), text(name).into_owned());
        match registry.providers.get(&key) {
            Some(p) => {
                // SAFETY: `out` is a writable AbiProvider owned by the caller.
                unsafe {
                    out.write(AbiProvider {
                        vtable: p.raw.vtable,
                        data: p.raw.data,
                        version: p.raw.version,
                    })
                };
                true
            }
            None => false,
        }
    }
}
