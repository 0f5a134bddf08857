//! The pure functions of mod_proxy and the lbmethod every proxied request
//! runs through: ProxyPass matching and target building, the byrequests
//! pick, ProxyPassReverse mapping. (One module crate per bench binary:
//! each module exports the same entry symbol.)

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mod_proxy::{paths, reverse};
use modproxy_api::lb::{select, LbMember};

fn path_matching(c: &mut Criterion) {
    c.bench_function("match_prefix /app/ against /app/static/logo.png", |b| {
        b.iter(|| paths::match_prefix(black_box("/app/"), black_box("/app/static/logo.png")))
    });
    c.bench_function("dot_segment on a clean path", |b| {
        b.iter(|| paths::dot_segment(black_box("/app/static/logo.png")))
    });
    c.bench_function("target for a balancer member", |b| {
        b.iter(|| {
            paths::target(
                black_box("http://127.0.0.1:8080"),
                black_box("/static/logo.png"),
                black_box("v=1"),
            )
        })
    });
}

fn lbmethod_pick(c: &mut Criterion) {
    let mut members: Vec<LbMember> = (1..=4)
        .map(|f| LbMember {
            lbfactor: f * 100,
            ..LbMember::default()
        })
        .collect();
    c.bench_function("byrequests pick among 4 weighted members", |b| {
        b.iter(|| select::by_requests(black_box(&mut members)))
    });
}

fn reverse_mapping(c: &mut Criterion) {
    c.bench_function("ProxyPassReverse a Location", |b| {
        b.iter(|| {
            reverse::map_url(
                black_box("http://127.0.0.1:8080/login?next=/"),
                black_box("http://127.0.0.1:8080/"),
                black_box("/"),
                black_box("https://example.com"),
            )
        })
    });
}

criterion_group!(hot, path_matching, lbmethod_pick, reverse_mapping);
criterion_main!(hot);
