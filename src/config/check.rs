//! What serde cannot check: every key against what `run` and the sinks
//! can work with, each error naming the key.

use std::path::Path;
use std::time::Duration;

use super::*;

impl Config {
    pub(super) fn check(&self, path: &Path) -> Result<(), ConfigError> {
        self.check_keys()
            .and_then(|()| self.check_schema())
            .map_err(|bad| bad.at(path))
    }

    /// Every key, on its own and against the others: what `validate`
    /// accepts, `run` must be able to run with.
    fn check_keys(&self) -> Result<(), Bad> {
        if self.sources.is_empty() {
            return Err(bad(
                "sources",
                "no sources configured: add a [sources.<name>] table with type = \"tail\"",
            ));
        }
        if self.sinks.is_empty() {
            return Err(bad(
                "sinks",
                "no sinks configured: add a [sinks.<name>] table, e.g. type = \"parquet\", url = \"file://lake\"",
            ));
        }
        // Names become directories (staging files, dead letters): a name
        // like ".." or "a/b" would write, or empty, another directory.
        let names = self.sources.keys().map(|n| ("sources", n));
        for (table, name) in names.chain(self.sinks.keys().map(|n| ("sinks", n))) {
            let safe = !name.is_empty()
                && name != "."
                && name != ".."
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !safe {
                return Err(bad(
                    format!("{table}.{name}"),
                    "a name may hold only letters, digits, '_', '-' and '.' (it names directories under data_dir)",
                ));
            }
        }
        positive_duration(
            "shutdown_timeout",
            self.shutdown_timeout,
            "0s would give up on the batches in flight at once on SIGTERM, so every stop would leave them to be read and sent again; for a quick stop use e.g. \"1s\"",
        )?;
        positive_duration(
            "checkpoint_interval",
            self.checkpoint_interval,
            "acknowledged offsets are written on a timer, which cannot tick every 0s",
        )?;
        bounded_duration("lock_wait", self.lock_wait)?;
        if self
            .schema
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            return Err(bad(
                "schema",
                "must not be empty (leave it out for the bundled schema)",
            ));
        }
        crate::schema::check_columns(&self.columns).map_err(Bad::from)?;
        for (name, source) in &self.sources {
            let SourceConfig::Tail(tail) = source;
            tail.check()
                .map_err(|e| Bad::from(e.under(&format!("sources.{name}"))))?;
        }
        self.batch
            .check()
            .map_err(|e| Bad::from(e.under("batch")))?;
        if self.memory_limit < MIN_MEMORY_LIMIT {
            return Err(bad(
                "memory_limit",
                format!(
                    "expected at least {}",
                    bytesize::ByteSize(MIN_MEMORY_LIMIT).display().iec()
                ),
            ));
        }
        // A batch takes about twice its input bytes as Arrow arrays; half of
        // memory_limit is for batches in flight, and two must fit.
        if self.batch.max_bytes > self.memory_limit / 8 {
            return Err(bad(
                "batch.max_bytes",
                format!(
                    "expected at most an eighth of memory_limit ({}): a batch takes about twice its input in memory, and half of memory_limit is for two or more batches in flight",
                    bytesize::ByteSize(self.memory_limit).display().iec()
                ),
            ));
        }
        for (name, sink) in &self.sinks {
            match sink {
                SinkConfig::Parquet(p) => self.check_parquet(name, p),
                SinkConfig::Bigquery(b) => check_bigquery(name, b)
                    .map_err(|(key, message)| bad(format!("sinks.{name}.{key}"), message)),
                SinkConfig::Amqp(a) => check_amqp(name, a),
            }?;
        }
        if let Some(n) = &self.notify {
            n.check_keys().map_err(|bad| bad.under("notify"))?;
        }
        Ok(())
    }

    fn check_parquet(&self, name: &str, p: &ParquetSinkConfig) -> Result<(), Bad> {
        let key = |k: &str| format!("sinks.{name}.{k}");
        tidewater_sinks::KeyTemplate::parse(&p.path_template)
            .map_err(|reason| bad(key("path_template"), reason))?;
        if p.zstd_level != 0 {
            parquet::basic::ZstdLevel::try_new(p.zstd_level).map_err(|e| {
                bad(
                    key("zstd_level"),
                    format!("expected 0 (uncompressed) or a zstd level: {e}"),
                )
            })?;
        }
        if p.concurrency == 0 {
            return Err(bad(key("concurrency"), "expected at least 1"));
        }
        if p.part_size < tidewater_sinks::parquet::MIN_PART_SIZE as u64 || p.part_size > 5 << 30 {
            return Err(bad(
                key("part_size"),
                "expected between 5MiB and 5GiB (S3's part limits)",
            ));
        }
        let share = self.parquet_buffer_limit();
        let least = tidewater_sinks::parquet::min_buffer_limit(
            usize::try_from(p.part_size).unwrap_or(usize::MAX),
        ) as u64;
        if p.rolling().is_some() && share < least {
            return Err(bad(
                key("part_size"),
                format!(
                    "with memory_limit {} each Parquet sink has {} for its buffers, and a rolling sink needs {} (two parts and the row groups of its open files): lower part_size (at least 5MiB) or raise memory_limit",
                    bytesize::ByteSize(self.memory_limit).display().iec(),
                    bytesize::ByteSize(share).display().iec(),
                    bytesize::ByteSize(least).display().iec(),
                ),
            ));
        }
        if let Err(tidewater_sinks::SinkError::Config { key: k, reason, .. }) =
            tidewater_sinks::store::check(name, &p.url, &p.store_options())
        {
            return Err(bad(key(k), reason));
        }
        positive_duration(
            &key("request_timeout"),
            p.request_timeout,
            "no request to the store can finish in 0s",
        )?;
        if p.target_file_size == Some(0) {
            return Err(bad(key("target_file_size"), "expected more than 0 bytes"));
        }
        if let Some(age) = p.max_file_age {
            positive_duration(
                &key("max_file_age"),
                age,
                "a combined file is completed when it is this old",
            )?;
        }
        if let Some((_, age)) = p.rolling() {
            if age < self.batch.max_age {
                return Err(bad(
                    key("max_file_age"),
                    format!(
                        "expected at least batch.max_age ({}): a batch can take that long to fill, so files would be completed before a second batch could join them",
                        humantime::format_duration(self.batch.max_age)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What needs the schema: it loads (the bundled one, or the file,
    /// relative to the working directory as for `run`), every column can
    /// be filled, and the key and table templates name columns it has.
    fn check_schema(&self) -> Result<(), Bad> {
        let schema = crate::schema::TableSchema::load(self.schema.as_deref(), &self.columns)
            .map_err(|e| bad("schema", e.to_string()))?;
        crate::batch::Builder::new(&schema, &self.columns, self.batch.clone())
            .map_err(|e| bad("schema", e))?;
        let arrow = schema.arrow();
        for (name, sink) in &self.sinks {
            match sink {
                SinkConfig::Parquet(p) => {
                    tidewater_sinks::KeyTemplate::parse(&p.path_template)
                        .and_then(|t| t.check_schema(&arrow))
                        .map_err(|reason| bad(format!("sinks.{name}.path_template"), reason))?;
                }
                SinkConfig::Bigquery(b) => {
                    check_table_template(&b.table, &arrow)
                        .map_err(|reason| bad(format!("sinks.{name}.table"), reason))?;
                    if let Some(path) = &b.schema {
                        let key = format!("sinks.{name}.schema");
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            bad(&key, format!("cannot read {}: {e}", path.display()))
                        })?;
                        serde_json::from_str::<Vec<serde_json::Map<String, serde_json::Value>>>(
                            &text,
                        )
                        .map_err(|e| {
                            bad(
                                &key,
                                format!(
                                    "{} is not a BigQuery JSON schema (an array of columns): {e}",
                                    path.display()
                                ),
                            )
                        })?;
                    }
                }
                SinkConfig::Amqp(_) => {}
            }
        }
        Ok(())
    }
}

/// A `type = "amqp"` sink's keys.
pub(super) fn check_amqp(name: &str, a: &AmqpSinkConfig) -> Result<(), Bad> {
    let key = |k: &str| format!("sinks.{name}.{k}");
    if let Err(e) = tidewater_sinks::when::Condition::parse(&a.when) {
        return Err(bad(key("when"), e.to_string()));
    }
    if !(a.url.starts_with("amqp://") || a.url.starts_with("amqps://")) {
        return Err(bad(key("url"), "expected amqp://… or amqps://…"));
    }
    amqp_name(&key("exchange"), &a.exchange, 255)?;
    if a.routing_key.len() > 255 {
        return Err(bad(
            key("routing_key"),
            "expected at most 255 bytes (AMQP's limit)",
        ));
    }
    placeholders(
        &a.routing_key,
        &["namespace", "container", "pod", "node", "level"],
    )
    .map_err(|m| bad(key("routing_key"), m))?;
    if let Some(i) = a.fields.iter().position(String::is_empty) {
        return Err(bad(
            format!("sinks.{name}.fields[{i}]"),
            "must not be empty",
        ));
    }
    if let Some(q) = &a.queue {
        amqp_name(&key("queue"), q, 250)?;
        amqp_name(&key("binding_key"), &a.binding_key, 255)?;
    }
    positive_duration(
        &key("confirm_timeout"),
        a.confirm_timeout,
        "every batch would time out waiting for the broker's confirms",
    )?;
    Ok(())
}

/// `{date}` or a STRING column in each placeholder of a BigQuery table name
/// (what the sink's own parser accepts).
pub(super) fn check_table_template(
    template: &str,
    schema: &arrow::datatypes::Schema,
) -> Result<(), String> {
    use arrow::datatypes::{DataType, TimeUnit};
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{template:?}: an unclosed {{"))?;
        let name = &rest[open + 1..open + close];
        if name == "date" {
            let ok = schema.field_with_name("timestamp").is_ok_and(|f| {
                matches!(f.data_type(), DataType::Timestamp(TimeUnit::Microsecond, _))
            });
            if !ok {
                return Err("{date} needs the TIMESTAMP column \"timestamp\"".into());
            }
        } else {
            match schema.field_with_name(name) {
                Ok(f) if f.data_type() == &DataType::Utf8 => {}
                Ok(_) => return Err(format!("{{{name}}} is not a STRING column")),
                Err(_) => {
                    return Err(format!(
                        "{{{name}}} is neither {{date}} nor a column of the schema"
                    ))
                }
            }
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A key that cannot be used, and why; `at` makes it a [`ConfigError`].
#[derive(Debug)]
pub(super) struct Bad {
    key: String,
    message: String,
}

pub(super) fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        message: message.into(),
    }
}

/// A component's own check (keys already prefixed with its table).
impl From<tidewater_sinks::config::Invalid> for Bad {
    fn from(e: tidewater_sinks::config::Invalid) -> Self {
        bad(e.key, e.message)
    }
}

impl Bad {
    /// The same, for a key inside the table `table`.
    pub(super) fn under(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }

    pub(super) fn at(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            key: self.key,
            message: self.message,
        }
    }
}

/// The longest duration accepted anywhere: longer ones cannot be added to
/// a clock reading (`Instant + Duration` overflows) and are surely a slip.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration that must be more than 0 (`why` says what it is for) and at
/// most [`MAX_DURATION`].
pub(super) fn positive_duration(key: &str, d: Duration, why: &str) -> Result<(), Bad> {
    if d.is_zero() {
        return Err(bad(key, format!("must be more than 0s: {why}")));
    }
    bounded_duration(key, d)
}

/// A duration where 0 means "not at all", at most [`MAX_DURATION`].
pub(super) fn bounded_duration(key: &str, d: Duration) -> Result<(), Bad> {
    if d > MAX_DURATION {
        return Err(bad(
            key,
            format!(
                "expected at most 365 days, got {}",
                humantime::format_duration(d)
            ),
        ));
    }
    Ok(())
}

/// An exchange, queue or binding key: not empty, at most `max` bytes (AMQP
/// allows 255).
pub(super) fn amqp_name(key: &str, value: &str, max: usize) -> Result<(), Bad> {
    if value.is_empty() {
        return Err(bad(key, "must not be empty"));
    }
    if value.len() > max {
        return Err(bad(
            key,
            format!("expected at most {max} bytes (AMQP's limit is 255)"),
        ));
    }
    Ok(())
}

/// Every `{name}` in `template` is one of `known`, and every `{` is closed.
pub(super) fn placeholders(template: &str, known: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("{template:?}: an unclosed {{"));
        };
        let name = &rest[open + 1..open + close];
        if !known.contains(&name) {
            let known: Vec<String> = known.iter().map(|k| format!("{{{k}}}")).collect();
            return Err(format!(
                "{template:?}: unknown placeholder {{{name}}}; expected {}",
                known.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A `type = "bigquery"` sink's keys: `Err((key, what was expected))`.
pub(super) fn check_bigquery(
    name: &str,
    b: &BigQuerySinkConfig,
) -> Result<(), (&'static str, String)> {
    use tidewater_sinks::bigquery::{Api, MAX_REQUEST_BYTES, MAX_ROWS_PER_REQUEST};
    let id = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    };
    if !id(&b.project) {
        return Err((
            "project",
            "expected a project id (letters, digits, -)".into(),
        ));
    }
    if b.dataset.is_empty()
        || !b
            .dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(("dataset", "expected letters, digits and _".into()));
    }
    if b.table.is_empty() {
        return Err(("table", "expected a table name".into()));
    }
    if b.max_rows_per_request == 0 || b.max_rows_per_request > MAX_ROWS_PER_REQUEST {
        return Err((
            "max_rows_per_request",
            format!("expected 1 to {MAX_ROWS_PER_REQUEST} (BigQuery's limit per request)"),
        ));
    }
    if b.max_request_bytes < 1024 || b.max_request_bytes > MAX_REQUEST_BYTES as u64 {
        return Err((
            "max_request_bytes",
            format!(
                "expected 1KiB to {MAX_REQUEST_BYTES} bytes (BigQuery refuses larger requests)"
            ),
        ));
    }
    if b.request_timeout.is_zero() {
        return Err((
            "request_timeout",
            "must be more than 0s: no request to BigQuery can finish in 0s".into(),
        ));
    }
    if b.request_timeout > MAX_DURATION {
        return Err(("request_timeout", "expected at most 365 days".into()));
    }
    if b.location.is_empty() {
        return Err((
            "location",
            "expected a BigQuery location, e.g. \"US\"".into(),
        ));
    }
    if b.clustering.len() > 4 {
        return Err((
            "clustering",
            "expected at most 4 columns (BigQuery's limit)".into(),
        ));
    }
    if b.clustering.iter().any(String::is_empty) {
        return Err(("clustering", "a column name must not be empty".into()));
    }
    if b.concurrency == 0 {
        return Err(("concurrency", "expected at least 1".into()));
    }
    // Without an emulator `endpoint` (or with `credentials`), requests carry
    // a real Google token: never over plain HTTP.
    let real_token = b.endpoint.is_none() || b.credentials.is_some();
    for (key, url) in [
        ("endpoint", &b.endpoint),
        ("storage_endpoint", &b.storage_endpoint),
    ] {
        let Some(u) = url else { continue };
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err((key, format!("expected http://… or https://…, got {u:?}")));
        }
        if real_token && u.starts_with("http://") {
            return Err((
                key,
                "expected https://: requests carry Google credentials here, which must not cross plain HTTP (an http:// emulator takes no credentials: set endpoint and leave credentials unset)".into(),
            ));
        }
    }
    let api = b.api().map_err(|e| ("api", e))?;
    if api == Api::StorageWrite && b.endpoint.is_some() && b.storage_endpoint.is_none() {
        return Err((
            "storage_endpoint",
            format!("sinks.{name}.endpoint is an emulator: set the emulator's Storage Write (gRPC) URL too, e.g. http://127.0.0.1:9060"),
        ));
    }
    Ok(())
}
