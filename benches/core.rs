//! Validation + defaulting, and full render, per sample (one core, release).
//!
//! `cargo bench --bench core` — prints median and p99 per operation and sample.
//! Targets (one core): validate + default < 50 µs, render < 200 µs.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use dittofs_operator::crd::{DittoServer, parse_spec};
use dittofs_operator::defaults::{apply_defaults, spec_defaulting_patch};
use dittofs_operator::effective::EffectiveSpec;
use dittofs_operator::manifest;
use dittofs_operator::resources::{BuildInputs, ManagedSecretValues, build_all};
use dittofs_operator::validation::{Offline, validate};
use futures::executor::block_on;

const WARMUP: Duration = Duration::from_millis(300);
const SAMPLES: usize = 20_000;

fn measure(mut op: impl FnMut()) -> (Duration, Duration) {
    let start = Instant::now();
    while start.elapsed() < WARMUP {
        op();
    }
    let mut times: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            op();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[SAMPLES / 2], times[SAMPLES * 99 / 100])
}

fn load(name: &str) -> (DittoServer, serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name);
    let docs = manifest::load_documents(&path).expect("sample readable");
    let doc = docs
        .into_iter()
        .find(manifest::is_ditto_server)
        .expect("a DittoServer");
    (manifest::ditto_server(&doc).expect("valid"), doc.value)
}

fn main() {
    // `cargo bench` passes --bench; a filter argument selects samples.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let names = [
        "minimal.yaml",
        "s3.yaml",
        "postgres.yaml",
        "percona.yaml",
        "smb.yaml",
        "metrics.yaml",
        "tls.yaml",
        "snapshots.yaml",
        "ldap.yaml",
        "kerberos.yaml",
    ];
    println!(
        "{:<14} {:>24} {:>24}",
        "sample", "validate+default p50/p99", "render p50/p99"
    );
    for name in names
        .iter()
        .filter(|n| filter.as_ref().is_none_or(|f| n.contains(f.as_str())))
    {
        let (ds, raw) = load(name);
        let (v50, v99) = measure(|| {
            let mut spec = black_box(&ds).spec.clone();
            apply_defaults(&mut spec);
            let raw_spec = &black_box(&raw)["spec"];
            let parsed = parse_spec(raw_spec).expect("spec");
            let patch = spec_defaulting_patch(raw_spec, &parsed).expect("patch");
            let report = block_on(validate(black_box(&ds), None, &Offline));
            black_box((spec, patch, report));
        });
        let inputs = BuildInputs {
            secrets: Default::default(),
            managed: ManagedSecretValues {
                jwt_secret: "j".repeat(43),
                admin_password: "p".repeat(32),
                account_password: "a".repeat(32),
            },
            ..Default::default()
        };
        let (r50, r99) = measure(|| {
            let eff = EffectiveSpec::resolve(black_box(&ds));
            black_box(build_all(&ds, &eff, &inputs).expect("build"));
        });
        println!(
            "{name:<14} {:>11.1} / {:>7.1} µs {:>11.1} / {:>7.1} µs",
            micros(v50),
            micros(v99),
            micros(r50),
            micros(r99)
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
