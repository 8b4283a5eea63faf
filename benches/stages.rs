//! The end-to-end job's stages, one at a time, on one fixed input: 10,000
//! CRI lines with JSON bodies shaped like `tests/gen-cri.py`'s (the corpus
//! of `benches/e2e.py`), generated here from a fixed seed.
//!
//! - `cri_framing`: lines → records with `parser = "none"` (the envelope,
//!   its RFC 3339 time, the stream, UTF-8 validation; the body untouched);
//! - `json_body`: the bodies alone through the JSON body parser, as after
//!   CRI framing (the line gave the time: the body's is not read);
//! - `timestamp`: the CRI timestamps alone (RFC 3339, nanoseconds);
//! - `arrow_batch`: the parsed records appended to a `Builder` and
//!   finished into one 10,000-row batch of the bundled schema;
//! - `parquet_encode`: that batch encoded as the Parquet sink encodes it
//!   (its writer properties, zstd level 1).
//!
//! Each reports input bytes per second (the lines' bytes, for every stage,
//! so the stages add up). `cargo bench --bench stages`; figures in
//! BENCHMARKS.md.

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tidewater::batch::{BatchConfig, Builder};
use tidewater::file::FileMeta;
use tidewater::parse::body::{self, rfc3339_micros};
use tidewater::parse::rules::{BodyKeys, BodyRules, ParserKind};
use tidewater::parse::{FileParser, Flags, Format, Record};
use tidewater::schema::TableSchema;
use tidewater::sinks::{PLAIN_COLUMNS, SMALL_COLUMNS};
use tidewater_sinks::parquet::{encode, writer_properties, Columns};

const LINES: usize = 10_000;

const PATHS: [&str; 7] = [
    "/api/v1/items/",
    "/api/v1/users/",
    "/healthz",
    "/api/v2/search?q=item",
    "/api/v1/orders/",
    "/static/app.",
    "/api/v1/payments/",
];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile",
    "okhttp/4.12.0",
    "Go-http-client/2.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
];
const MESSAGES: [(&str, &str); 8] = [
    ("info", "request completed"),
    ("info", "cache hit"),
    ("info", "item listed"),
    ("info", "payment authorised"),
    ("info", "search served"),
    ("warn", "slow upstream response"),
    ("error", "database connection reset by peer"),
    ("debug", "cache lookup"),
];

/// splitmix64: a fixed pseudo-random sequence, so every run sees the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// CRI lines with JSON bodies, about 320 bytes each.
fn corpus() -> Vec<String> {
    let mut rng = Rng(7);
    (0..LINES)
        .map(|seq| {
            let ms = seq * 3 + rng.below(3);
            let (h, m, s) = (3 + ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
            let nanos = (ms % 1000) * 1_000_000 + rng.below(1_000_000);
            let (level, msg) = MESSAGES[rng.below(MESSAGES.len())];
            format!(
                r#"2026-11-22T{h:02}:{m:02}:{s:02}.{nanos:09}Z stdout F {{"ts":"2026-11-22T{h:02}:{m:02}:{s:02}.{:03}Z","level":"{level}","msg":"{msg} seq={seq}","seq":{seq},"req_id":"{:016x}","method":"GET","path":"{}{}","status":{},"latency_ms":{}.{:03},"user_agent":"{}"}}"#,
                ms % 1000,
                rng.next(),
                PATHS[rng.below(PATHS.len())],
                rng.below(99_999),
                [200, 200, 200, 204, 404, 503][rng.below(6)],
                rng.below(200),
                rng.below(1000),
                AGENTS[rng.below(AGENTS.len())],
            )
        })
        .collect()
}

fn input_bytes(lines: &[String]) -> u64 {
    lines.iter().map(|l| l.len() as u64 + 1).sum()
}

fn rules(parser: ParserKind) -> Arc<BodyRules> {
    let keys = BodyKeys {
        parser,
        ..BodyKeys::default()
    };
    Arc::new(BodyRules::new(&keys, Arc::from(Vec::<String>::new())).expect("valid rules"))
}

/// The lines through a `FileParser`, each record handed to `each`.
fn parse_all(lines: &[String], rules: &Arc<BodyRules>, mut each: impl FnMut(&Record)) -> usize {
    let mut parser = FileParser::new(Format::Cri, Arc::clone(rules), 1 << 20);
    let mut records = 0;
    let mut emit = |r: &Record| {
        each(r);
        records += 1;
    };
    for (i, line) in lines.iter().enumerate() {
        parser.line(line.as_bytes(), i as u64 * 320, Flags::default(), &mut emit);
    }
    parser.flush(&mut emit);
    records
}

fn meta() -> FileMeta {
    FileMeta {
        source: "bench".into(),
        path: "/var/log/containers/shop-7d9f_prod_app-0123456789abcdef.log".into(),
        k8s: Default::default(),
        fingerprint: 1,
        inode_key: 1,
    }
}

fn builder() -> Builder {
    let schema = TableSchema::load(None, &[]).expect("the bundled schema");
    let limits = BatchConfig {
        max_rows: LINES,
        ..BatchConfig::default()
    };
    Builder::new(&schema, &[], limits).expect("the bundled schema has a source for every column")
}

fn stages(c: &mut Criterion) {
    let lines = corpus();
    let bytes = input_bytes(&lines);
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Bytes(bytes));

    let raw = rules(ParserKind::None);
    assert_eq!(parse_all(&lines, &raw, |_| ()), LINES);
    group.bench_function("cri_framing", |b| {
        b.iter(|| {
            parse_all(&lines, &raw, |r| {
                black_box(r);
            })
        })
    });

    let json = rules(ParserKind::Auto);
    let bodies: Vec<&str> = lines
        .iter()
        .map(|l| l.splitn(4, ' ').nth(3).expect("a CRI line has a body"))
        .collect();
    for b in &bodies {
        body::parse(b, &json, true).expect("the corpus's bodies are JSON");
    }
    group.bench_function("json_body", |b| {
        b.iter(|| {
            for text in &bodies {
                let _ = black_box(body::parse(text, &json, true));
            }
        })
    });

    let stamps: Vec<&str> = lines
        .iter()
        .map(|l| l.split(' ').next().expect("a CRI line has a time"))
        .collect();
    assert!(stamps.iter().all(|s| rfc3339_micros(s).is_some()));
    group.bench_function("timestamp", |b| {
        b.iter(|| {
            for s in &stamps {
                black_box(rfc3339_micros(s));
            }
        })
    });

    let records: Vec<Record> = lines
        .iter()
        .zip(&bodies)
        .zip(&stamps)
        .enumerate()
        .map(|(i, ((line, text), stamp))| {
            let b = body::parse(text, &json, true).expect("the corpus's bodies are JSON");
            Record {
                timestamp_us: rfc3339_micros(stamp),
                stream: Some("stdout"),
                level: b.level,
                message: b.message,
                fields: Some(Cow::Borrowed(*text)),
                offset: i as u64 * (line.len() as u64 + 1),
                ..Record::default()
            }
        })
        .collect();
    let meta = meta();
    let mut batch_builder = builder();
    let mut build = || {
        for r in &records {
            batch_builder.append(&meta, r, 1_795_316_400_000_000);
        }
        batch_builder.finish().expect("rows were appended").records
    };
    let batch = build();
    assert_eq!(batch.num_rows(), LINES);
    group.bench_function("arrow_batch", |b| b.iter(&mut build));

    let columns = Columns {
        plain: PLAIN_COLUMNS,
        small: SMALL_COLUMNS,
    };
    let props = writer_properties(1, &batch.schema(), &columns).expect("zstd level 1 exists");
    let file = encode(&batch, &props).expect("the batch encodes");
    eprintln!(
        "parquet_encode: {} rows, {} input bytes -> {} bytes of Parquet",
        batch.num_rows(),
        bytes,
        file.len()
    );
    group.bench_function("parquet_encode", |b| {
        b.iter(|| encode(black_box(&batch), &props).expect("the batch encodes"))
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
