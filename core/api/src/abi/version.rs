//! The ABI's version and layout hash, and the rule that lets a module
//! built for an older minor keep loading after the ABI grows.
//!
//! Policy (enforced by the loader, core/server/src/loader/dl.rs):
//! - **major**: changes when an existing item changes its layout or
//!   meaning. A module of another major is refused.
//! - **minor**: grows when items are appended (a host service at the end
//!   of [`HostApi`], a field at the end of a size-prefixed table, a new
//!   hook kind). A module built for this minor or an older one loads and
//!   runs: it sees only the prefix it was built with. A module that needs
//!   a newer minor than the host has is refused, naming what it needs.
//! - **layout hash**: covers only what a module of that minor can see.
//!   [`layout_hash_for`]`(m)` hashes the facts of minors `0..=m`, so the
//!   host can check the layout of every older minor it serves.
//!
//! Appending in minor N: add its facts as a new entry of [`FACTS`]; in the
//! entry of the minor that last ended the grown item, replace its
//! `size_of` with the `offset_of` of the first appended field (that is
//! where the older prefix ends). The pinned hashes in the tests must not
//! change: a change there means an existing minor's layout moved, which
//! is a new major.

use super::balancer::{BalancerV1, MemberPick};
use super::filter::{filter_code, OutputFilterV1, MAX_EMIT_PER_CHUNK};
use super::health::{HcReport, HcTarget, HealthV1};
use super::lbmethod::{LbMember, LbMethodV1, LbOutcome, LbStats};
use super::metrics::MetricsV1;
use super::proxy::{ExchangeOutcome, ProxyExchange, SchemeHandlerV1, TimedOutcome, WorkerParams};
use super::*;
use std::mem::{align_of, offset_of, size_of};

/// A major and a minor version, as the header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiVersion {
    pub major: u16,
    pub minor: u16,
}

impl AbiVersion {
    /// The version this build of the API speaks.
    pub const CURRENT: AbiVersion = AbiVersion { major: 1, minor: 7 };

    /// Major in the low 16 bits, minor in the high ones: modules built
    /// before minors existed wrote plain 1, which decodes as 1.0.
    pub const fn encode(self) -> u32 {
        self.major as u32 | (self.minor as u32) << 16
    }
    pub const fn decode(raw: u32) -> AbiVersion {
        AbiVersion {
            major: (raw & 0xffff) as u16,
            minor: (raw >> 16) as u16,
        }
    }
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a module's header says it was built for.
pub const ABI_VERSION: u32 = AbiVersion::CURRENT.encode();

/// The sizes, alignments and offsets a module of each minor relies on,
/// minor 0 first.
const FACTS: &[&[usize]] = &[
    // 1.0: the first release (commit 5987492).
    &[
        size_of::<AbiStr>(),
        align_of::<AbiStr>(),
        size_of::<AbiChunk>(),
        offset_of!(AbiChunk, drop_fn),
        size_of::<AbiWaker>(),
        size_of::<AbiWakerVTable>(),
        size_of::<AbiFuture>(),
        offset_of!(AbiFuture, drop_fn),
        size_of::<AbiSection>(),
        offset_of!(AbiSection, toml),
        size_of::<AbiProvider>(),
        size_of::<AbiFieldSpan>(),
        size_of::<AbiFieldList>(),
        // HostApi as 1.0 ended: where 1.1's first service begins.
        offset_of!(HostApi, conn_idle_state),
        offset_of!(HostApi, response_start),
        offset_of!(HostApi, conn_drop),
        offset_of!(HostApi, conn_set_keepalive),
        offset_of!(HostApi, conn_poll_readable),
        offset_of!(HostApi, metrics_render),
        offset_of!(HostApi, tls_connect_new),
        offset_of!(HostApi, upgrade_take),
        size_of::<ModuleHeader>(),
        offset_of!(ModuleHeader, init),
        size_of::<LbMember>(),
        offset_of!(LbMember, elected),
        size_of::<ProxyExchange>(),
        offset_of!(ProxyExchange, outcome),
        size_of::<WorkerParams>(),
        offset_of!(WorkerParams, tls_ca_file),
        size_of::<MemberPick>(),
        size_of::<SchemeHandlerV1>(),
        // BalancerV1 and LbMethodV1 as 1.0 ended: where 1.2's entries begin.
        offset_of!(BalancerV1, report_done),
        offset_of!(LbMethodV1, find_with_stats),
        size_of::<MetricsV1>(),
        // The hook kinds 1.0 had (1.3 added child_init).
        8,
    ],
    // 1.1: HostApi::conn_idle_state and provider_module.
    &[
        offset_of!(HostApi, conn_idle_state),
        offset_of!(HostApi, provider_module),
        // HostApi as 1.1 ended (until 1.7): where 1.7's first service begins.
        offset_of!(HostApi, body_splice_from),
    ],
    // 1.2: what an lbmethod hears of each attempt (LbMethodV1::done, with
    // the LbStats array beside the frozen LbMember one), how proxy tells
    // the balancer (BalancerV1::report_done), and the timed outcome a
    // scheme handler fills when asked (exchange_flags::TIMED).
    &[
        offset_of!(LbMethodV1, find_with_stats),
        offset_of!(LbMethodV1, done),
        size_of::<LbMethodV1>(),
        size_of::<LbStats>(),
        offset_of!(LbStats, response_avg_us),
        size_of::<LbOutcome>(),
        offset_of!(LbOutcome, code),
        offset_of!(LbOutcome, flags),
        offset_of!(LbOutcome, status),
        offset_of!(BalancerV1, report_done),
        size_of::<BalancerV1>(),
        size_of::<ExchangeOutcome>(),
        size_of::<TimedOutcome>(),
        offset_of!(TimedOutcome, head_us),
    ],
    // 1.3: health checks (the health family: HealthV1, HcTarget, HcReport;
    // LbMember's flag HC_FAILED) and the child_init hook that starts them.
    &[
        // The hook kinds 1.3 had (1.4 added output_filter).
        9,
        size_of::<HealthV1>(),
        offset_of!(HealthV1, report),
        size_of::<HcTarget>(),
        offset_of!(HcTarget, params),
        size_of::<HcReport>(),
        offset_of!(HcReport, reason),
    ],
    // 1.4: output filters (OutputFilterV1, the output_filter hook kind).
    &[
        // The hook kinds 1.4 had (1.5 added input_filter).
        10,
        size_of::<OutputFilterV1>(),
        offset_of!(OutputFilterV1, drop_state),
        MAX_EMIT_PER_CHUNK,
    ],
    // 1.5: input filters (the input_filter hook kind, filter_code::TOO_LARGE),
    // CPING health checks (hc_method::CPING), and the purge family (PurgeV1).
    &[
        // The hook kinds 1.5 had.
        11,
        filter_code::TOO_LARGE as usize,
        super::health::hc_method::CPING as usize,
        size_of::<super::purge::PurgeV1>(),
    ],
    // 1.6: trailers (the header maps headers::REQUEST_TRAILERS and
    // RESPONSE_TRAILERS, for gRPC over HTTP/2).
    &[
        // The hook kinds 1.6 had.
        11,
        headers::REQUEST_TRAILERS as usize,
        headers::RESPONSE_TRAILERS as usize,
        // Members from a source and manager changes shared across a fleet
        // (abi/members.rs: MembersV1, MemberSyncV1; issue 21).
        size_of::<super::members::MembersV1>(),
        offset_of!(super::members::MembersV1, apply_settings),
        size_of::<super::members::MemberSource>(),
        offset_of!(super::members::MemberSource, at),
        size_of::<super::members::MemberSpec>(),
        size_of::<super::members::MemberSettings>(),
        offset_of!(super::members::MemberSettings, status),
        size_of::<super::members::MemberSyncV1>(),
        // h2:// backends (proxy_http2): ALPN h2 on a TLS connect, and a
        // zero-length conn_write that flushes what TLS still holds.
        super::host::tls_flags::ALPN_H2 as usize,
    ],
    // 1.7: bodies spliced between sockets in the kernel (HostApi's
    // body_splice_from, body_splice_to and body_splice_replay,
    // io::ERR_UNSUPPORTED).
    &[
        offset_of!(HostApi, body_splice_from),
        offset_of!(HostApi, body_splice_to),
        offset_of!(HostApi, body_splice_replay),
        size_of::<HostApi>(),
        io::ERR_UNSUPPORTED as usize,
    ],
];

/// The layout hash of `minor` (of the current major): FNV-1a over the
/// facts of minors `0..=minor`; `None` for a minor this build does not
/// know.
pub const fn layout_hash_for(minor: u16) -> Option<u64> {
    if minor as usize >= FACTS.len() {
        return None;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut m = 0;
    while m <= minor as usize {
        let facts = FACTS[m];
        let mut i = 0;
        while i < facts.len() {
            let mut v = facts[i] as u64;
            let mut b = 0;
            while b < 8 {
                hash ^= v & 0xff;
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
                v >>= 8;
                b += 1;
            }
            i += 1;
        }
        m += 1;
    }
    Some(hash)
}

/// The hash a module built with this API writes into its header.
pub const LAYOUT_HASH: u64 = match layout_hash_for(AbiVersion::CURRENT.minor) {
    Some(h) => h,
    None => panic!("AbiVersion::CURRENT.minor has no entry in FACTS"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_old_headers_read_as_1_0() {
        let v = AbiVersion { major: 1, minor: 7 };
        assert_eq!(AbiVersion::decode(v.encode()), v);
        assert_eq!(AbiVersion::decode(1), AbiVersion { major: 1, minor: 0 });
        assert_eq!(AbiVersion::CURRENT.to_string(), "1.7");
    }

    #[test]
    fn every_minor_up_to_the_current_one_has_facts() {
        assert_eq!(FACTS.len(), AbiVersion::CURRENT.minor as usize + 1);
        assert!(layout_hash_for(AbiVersion::CURRENT.minor + 1).is_none());
    }

    /// The layout of a released minor never moves: 1.0's hash is the one
    /// modules built at commit 5987492 carry (the fixture in
    /// tests/fixtures/abi_1_0 is such a module).
    #[test]
    fn released_minors_keep_their_hash() {
        assert_eq!(layout_hash_for(0), Some(HASH_1_0));
        assert_eq!(layout_hash_for(1), Some(HASH_1_1));
        assert_eq!(layout_hash_for(2), Some(HASH_1_2));
        assert_eq!(layout_hash_for(3), Some(HASH_1_3));
        assert_eq!(layout_hash_for(4), Some(HASH_1_4));
        assert_eq!(layout_hash_for(5), Some(HASH_1_5));
        assert_eq!(layout_hash_for(6), Some(HASH_1_6));
        assert_eq!(layout_hash_for(7), Some(HASH_1_7));
    }
    const HASH_1_0: u64 = 0xfea9_e8e3_0c68_f8c6;
    /// 1.1 as released (commit 3c16002).
    const HASH_1_1: u64 = 0xcd22_25b2_c206_5749;
    /// 1.2 as released (commit b5d90cb).
    const HASH_1_2: u64 = 0xff8f_6b9b_2386_9855;
    /// 1.3 as released (commit 8f663b8).
    const HASH_1_3: u64 = 0x31e1_8c1f_00f8_aa34;
    /// 1.4 as released (commit 2d625fe).
    const HASH_1_4: u64 = 0xfb26_f131_c916_23f6;
    /// 1.5 as released (commit 01b8c3f).
    const HASH_1_5: u64 = 0x3ae6_7109_617b_620b;
    /// 1.6 as released (commit 8f89dfb).
    const HASH_1_6: u64 = 0x03d1_6776_a149_ba1b;
    /// 1.7 as released (issue 23's tenth session).
    const HASH_1_7: u64 = 0xa911_67a9_38bd_e933;

    /// The arrays a method gets are frozen: their size is their stride.
    #[test]
    fn arrays_keep_their_stride() {
        assert_eq!(size_of::<LbMember>(), 56);
        assert_eq!(size_of::<LbStats>(), 24);
        assert_eq!(size_of::<ExchangeOutcome>(), 24);
    }
}
