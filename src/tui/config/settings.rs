//! `config.toml`: the few settings that are not keys or colours. Every key is optional; a bad value
//! becomes a located warning and its default is used, so a typo never keeps the app from starting.
//!
//! ```toml
//! theme = "dark"
//! keymap = "default"          # or a path to a keymap file
//! executor = "local"          # or "slurm"
//! read_only = false
//! [poll]
//! interval = "2s"             # run files (step states, logs) and the clock on screen
//! metrics_interval = "5s"     # new points of live curves (TensorBoard reloads every 5 s)
//! max_interval = "60s"
//! rpc_budget_per_minute = 6   # squeue/sacct calls, shared by every view
//! [notify]
//! bell = true
//! webhook = "https://hooks.example.org/…"
//! on = ["run_end", "step_failed"]
//! [trials]
//! paths = ["results/"]        # study files or folders (default: the project folder)
//! poll = "1s"                 # how often studies are read for changes
//! heartbeat_grace = "2m"      # a RUNNING trial whose RDB heartbeat is older is stale
//! stale_after = "30m"         # a RUNNING trial that changed nothing for this long is stale
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Source, suggestion};

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub theme: String,
    pub keymap: String,
    pub executor: ExecutorKind,
    pub read_only: bool,
    pub poll: Poll,
    pub notify: Notify,
    pub trials: TrialsSettings,
}

/// Where the Trials pane finds Optuna studies and when it calls a running trial stale.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialsSettings {
    /// Study files or folders; empty means the project folder.
    pub paths: Vec<std::path::PathBuf>,
    pub poll: Duration,
    /// Optuna's own default is twice the heartbeat interval; 2 min suits a 60 s interval.
    pub heartbeat_grace: Duration,
    pub stale_after: Duration,
}

impl Default for TrialsSettings {
    fn default() -> TrialsSettings {
        TrialsSettings {
            paths: Vec::new(),
            poll: Duration::from_secs(1),
            heartbeat_grace: Duration::from_secs(120),
            stale_after: Duration::from_secs(1800),
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            theme: super::theme::DEFAULT_THEME.to_string(),
            keymap: "default".to_string(),
            executor: ExecutorKind::Local,
            read_only: false,
            poll: Poll::default(),
            notify: Notify::default(),
            trials: TrialsSettings::default(),
        }
    }
}

/// How often views refresh. Polling backs off from `interval` to `max_interval` while nothing
/// changes; SLURM queries are also capped per minute, because login nodes are shared.
#[derive(Clone, Debug, PartialEq)]
pub struct Poll {
    pub interval: Duration,
    /// How often live curves take in new points: a training run appends them all the time, and
    /// reading them is most of what watching one costs. Never shorter than `interval`.
    pub metrics_interval: Duration,
    pub max_interval: Duration,
    pub rpc_budget_per_minute: u32,
}

impl Default for Poll {
    fn default() -> Poll {
        Poll {
            interval: Duration::from_secs(2),
            metrics_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
            rpc_budget_per_minute: 6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

impl ExecutorKind {
    const ALL: [(&'static str, ExecutorKind); 2] = [
        ("local", ExecutorKind::Local),
        ("slurm", ExecutorKind::Slurm),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Notify {
    /// Ring the terminal bell.
    pub bell: bool,
    pub webhook: Option<Webhook>,
    /// Which events notify.
    pub on: Vec<NotifyEvent>,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify {
            bell: true,
            webhook: None,
            on: vec![NotifyEvent::RunEnd, NotifyEvent::StepFailed],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyEvent {
    /// A run finished, however it ended.
    RunEnd,
    RunFailed,
    StepFailed,
    /// A SLURM job left the queue and started.
    JobStarted,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::RunEnd,
        NotifyEvent::RunFailed,
        NotifyEvent::StepFailed,
        NotifyEvent::JobStarted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::RunEnd => "run_end",
            NotifyEvent::RunFailed => "run_failed",
            NotifyEvent::StepFailed => "step_failed",
            NotifyEvent::JobStarted => "job_started",
        }
    }
}

/// A webhook URL. It usually embeds a secret token, so `Debug` and `Display` show only the host, and
/// parse errors never repeat the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    url: String,
    host: String,
}

impl Webhook {
    pub fn parse(url: &str) -> Result<Webhook, String> {
        let url = url.trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or("must start with https:// or http://")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Drop `user:password@`: credentials are exactly what must not be printed.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c));
        if !valid {
            return Err("has no valid host".into());
        }
        Ok(Webhook {
            url: url.to_string(),
            host: host.to_string(),
        })
    }

    /// The full URL, secret included: only for making the request.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Safe to print.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Webhook({}/…)", self.host)
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/…", self.host)
    }
}

impl Settings {
    /// How often to refresh when things are changing.
    pub fn poll_interval(&self) -> Duration {
        self.poll.interval
    }

    /// Reads `config.toml` from [`super::config_dir`].
    pub fn load() -> (Settings, Vec<String>) {
        Settings::load_from(super::config_dir().as_deref())
    }

    /// Reads `<dir>/config.toml`; a missing file (or no directory) just means defaults.
    pub fn load_from(dir: Option<&Path>) -> (Settings, Vec<String>) {
        let Some(path) = dir.map(|d| d.join("config.toml")) else {
            return (Settings::default(), Vec::new());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Settings::parse(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Settings::default(), Vec::new()),
            Err(e) => (
                Settings::default(),
                vec![format!(
                    "{}: cannot read ({e}); using default settings",
                    path.display()
                )],
            ),
        }
    }

    /// Parses the text of a `config.toml` (`label` names it in warnings).
    pub fn parse(label: &str, text: &str) -> (Settings, Vec<String>) {
        let src = Source::new(label, text);
        let mut s = Settings::default();
        let mut w = Vec::new();
        let root = match DeTable::parse(text) {
            Ok(t) => t.into_inner(),
            Err(e) => return (s, vec![src.toml_error(&e, "using default settings")]),
        };
        let mut p = Parser {
            src: &src,
            warnings: &mut w,
        };
        for (k, v) in &root {
            match k.get_ref().as_ref() {
                "theme" => p.string(v, "theme", &mut s.theme),
                "keymap" => p.string(v, "keymap", &mut s.keymap),
                "read_only" => p.bool(v, "read_only", &mut s.read_only),
                "executor" => {
                    let mut name = s.executor.as_str().to_string();
                    p.string(v, "executor", &mut name);
                    match ExecutorKind::ALL.iter().find(|(n, _)| *n == name) {
                        Some((_, e)) => s.executor = *e,
                        None => p.warn(
                            v,
                            format!("unknown executor `{name}` (expected local or slurm)"),
                        ),
                    }
                }
                "poll" => p.poll(v, &mut s.poll),
                "notify" => p.notify(v, &mut s.notify),
                "trials" => p.trials(v, &mut s.trials),
                other => p.unknown(
                    k,
                    "",
                    other,
                    &[
                        "theme",
                        "keymap",
                        "executor",
                        "read_only",
                        "poll",
                        "notify",
                        "trials",
                    ],
                ),
            }
        }
        w.sort_by_key(|(at, _)| *at);
        (s, w.into_iter().map(|(_, m)| m).collect())
    }
}

struct Parser<'a, 't> {
    src: &'a Source<'t>,
    /// With the byte offset each points at, so they can be reported in file order.
    warnings: &'a mut Vec<(usize, String)>,
}

impl Parser<'_, '_> {
    fn warn<T>(&mut self, at: &Spanned<T>, msg: String) {
        let span = at.span();
        self.warnings.push((span.start, self.src.at(span, msg)));
    }

    fn unknown(&mut self, k: &Spanned<impl AsRef<str>>, table: &str, name: &str, valid: &[&str]) {
        let place = if table.is_empty() {
            String::new()
        } else {
            format!(" in [{table}]")
        };
        self.warn(
            k,
            format!(
                "unknown setting `{name}`{place}{} (valid: {})",
                suggestion(name, valid.iter().copied()),
                valid.join(", ")
            ),
        );
    }

    fn string(&mut self, v: &Spanned<DeValue>, key: &str, out: &mut String) {
        match v.get_ref() {
            DeValue::String(s) => *out = s.to_string(),
            other => self.warn(
                v,
                format!("`{key}` must be a string, not {}", other.type_str()),
            ),
        }
    }

    fn bool(&mut self, v: &Spanned<DeValue>, key: &str, out: &mut bool) {
        match v.get_ref() {
            DeValue::Boolean(b) => *out = *b,
            other => self.warn(
                v,
                format!("`{key}` must be true or false, not {}", other.type_str()),
            ),
        }
    }

    fn duration(&mut self, v: &Spanned<DeValue>, key: &str, out: &mut Duration) {
        let DeValue::String(s) = v.get_ref() else {
            self.warn(
                v,
                format!("`{key}` must be a duration string such as \"2s\" or \"1m30s\""),
            );
            return;
        };
        match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => self.warn(v, format!("`{key}` must be longer than zero")),
            Ok(d) => *out = d,
            Err(_) => self.warn(
                v,
                format!("`{key}`: `{s}` is not a duration; write e.g. \"2s\" or \"1m30s\""),
            ),
        }
    }

    fn table<'v, 'i>(&mut self, v: &'v Spanned<DeValue<'i>>, key: &str) -> Option<&'v DeTable<'i>> {
        let t = v.get_ref().as_table();
        if t.is_none() {
            self.warn(v, format!("`{key}` must be a table ([{key}])"));
        }
        t
    }

    fn poll(&mut self, v: &Spanned<DeValue>, out: &mut Poll) {
        let Some(t) = self.table(v, "poll") else {
            return;
        };
        let mut max_at = None;
        let mut metrics_at = None;
        for (k, v) in t {
            match k.get_ref().as_ref() {
                "interval" => self.duration(v, "poll.interval", &mut out.interval),
                "metrics_interval" => {
                    self.duration(v, "poll.metrics_interval", &mut out.metrics_interval);
                    metrics_at = Some(v);
                }
                "max_interval" => {
                    self.duration(v, "poll.max_interval", &mut out.max_interval);
                    max_at = Some(v);
                }
                "rpc_budget_per_minute" => match v.get_ref() {
                    DeValue::Integer(i) => match u32::from_str_radix(i.as_str(), i.radix()) {
                        Ok(n) if n >= 1 => out.rpc_budget_per_minute = n,
                        _ => self.warn(
                            v,
                            "`poll.rpc_budget_per_minute` must be a whole number of at least 1"
                                .into(),
                        ),
                    },
                    _ => self.warn(
                        v,
                        "`poll.rpc_budget_per_minute` must be a whole number of at least 1".into(),
                    ),
                },
                other => self.unknown(
                    k,
                    "poll",
                    other,
                    &[
                        "interval",
                        "metrics_interval",
                        "max_interval",
                        "rpc_budget_per_minute",
                    ],
                ),
            }
        }
        if out.max_interval < out.interval {
            let msg = format!(
                "`poll.max_interval` ({}) is shorter than `poll.interval` ({}); using {}",
                humantime::format_duration(out.max_interval),
                humantime::format_duration(out.interval),
                humantime::format_duration(out.interval),
            );
            match max_at {
                Some(at) => self.warn(at, msg),
                None => self.warn(v, msg),
            }
            out.max_interval = out.interval;
        }
        if out.metrics_interval < out.interval {
            // Only a value the user wrote is worth a warning; the default simply follows `interval`.
            if let Some(at) = metrics_at {
                let msg = format!(
                    "`poll.metrics_interval` ({}) is shorter than `poll.interval` ({}); using {}",
                    humantime::format_duration(out.metrics_interval),
                    humantime::format_duration(out.interval),
                    humantime::format_duration(out.interval),
                );
                self.warn(at, msg);
            }
            out.metrics_interval = out.interval;
        }
    }

    fn trials(&mut self, v: &Spanned<DeValue>, out: &mut TrialsSettings) {
        let Some(t) = self.table(v, "trials") else {
            return;
        };
        for (k, v) in t {
            match k.get_ref().as_ref() {
                "paths" => {
                    let Some(items) = v.get_ref().as_array() else {
                        self.warn(
                            v,
                            "`trials.paths` must be a list such as [\"results/\"]".into(),
                        );
                        continue;
                    };
                    out.paths.clear();
                    for item in items.iter() {
                        match item.get_ref().as_str() {
                            Some(p) if !p.is_empty() => out.paths.push(expand_home(p)),
                            _ => self.warn(
                                item,
                                "`trials.paths` entries must be non-empty path strings".into(),
                            ),
                        }
                    }
                }
                "poll" => self.duration(v, "trials.poll", &mut out.poll),
                "heartbeat_grace" => {
                    self.duration(v, "trials.heartbeat_grace", &mut out.heartbeat_grace)
                }
                "stale_after" => self.duration(v, "trials.stale_after", &mut out.stale_after),
                other => self.unknown(
                    k,
                    "trials",
                    other,
                    &["paths", "poll", "heartbeat_grace", "stale_after"],
                ),
            }
        }
    }

    fn notify(&mut self, v: &Spanned<DeValue>, out: &mut Notify) {
        let Some(t) = self.table(v, "notify") else {
            return;
        };
        for (k, v) in t {
            match k.get_ref().as_ref() {
                "bell" => self.bool(v, "notify.bell", &mut out.bell),
                "webhook" => match v.get_ref() {
                    DeValue::String(s) if s.is_empty() => out.webhook = None,
                    DeValue::String(s) => match Webhook::parse(s) {
                        Ok(w) => out.webhook = Some(w),
                        // The message never contains the URL: it may carry a token.
                        Err(e) => self.warn(v, format!("`notify.webhook` {e}")),
                    },
                    _ => self.warn(v, "`notify.webhook` must be a URL string".into()),
                },
                "on" => {
                    let Some(items) = v.get_ref().as_array() else {
                        self.warn(v, "`notify.on` must be a list such as [\"run_end\"]".into());
                        continue;
                    };
                    let mut events = Vec::new();
                    for item in items.iter() {
                        let name = item.get_ref().as_str().unwrap_or_default();
                        match NotifyEvent::ALL.iter().find(|e| e.as_str() == name) {
                            Some(e) if !events.contains(e) => events.push(*e),
                            Some(_) => {}
                            None => {
                                let valid = NotifyEvent::ALL.map(NotifyEvent::as_str);
                                self.warn(
                                    item,
                                    format!(
                                        "unknown event `{name}`{} (valid: {})",
                                        suggestion(name, valid),
                                        valid.join(", ")
                                    ),
                                );
                            }
                        }
                    }
                    out.on = events;
                }
                other => self.unknown(k, "notify", other, &["bell", "webhook", "on"]),
            }
        }
    }
}

/// `~/x` as the user means it.
fn expand_home(p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), directories::BaseDirs::new()) {
        (Some(rest), Some(b)) => b.home_dir().join(rest),
        _ => std::path::PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_settings_parse_and_bad_values_are_located() {
        let (s, w) = Settings::parse(
            "c.toml",
            "[trials]\npaths = [\"results\", \"a.db\"]\npoll = \"250ms\"\nstale_after = \"10m\"\n",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.trials.paths.len(), 2);
        assert_eq!(s.trials.poll, Duration::from_millis(250));
        assert_eq!(s.trials.stale_after, Duration::from_secs(600));
        let (s, w) = Settings::parse("c.toml", "[trials]\npaths = \"x\"\nstal_after = \"1m\"\n");
        assert!(s.trials.paths.is_empty());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("c.toml:2:"), "{w:?}");
        assert!(w[1].contains("did you mean `stale_after`"), "{w:?}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let (s, w) = Settings::parse("config.toml", "");
        assert!(w.is_empty());
        assert_eq!(s, Settings::default());
        assert_eq!(s.theme, "dark");
        assert_eq!(s.keymap, "default");
        assert_eq!(s.poll.interval, Duration::from_secs(2));
        assert_eq!(s.poll.metrics_interval, Duration::from_secs(5));
        assert_eq!(s.poll.max_interval, Duration::from_secs(60));
        assert_eq!(s.poll.rpc_budget_per_minute, 6);
        assert_eq!(s.executor, ExecutorKind::Local);
        assert!(s.notify.bell);
        assert_eq!(s.notify.on, [NotifyEvent::RunEnd, NotifyEvent::StepFailed]);
        assert!(!s.read_only);
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
theme = "light"
keymap = "~/dots/sortie-keys.toml"
executor = "slurm"
read_only = true
[poll]
interval = "500ms"
metrics_interval = "1s"
max_interval = "5m"
rpc_budget_per_minute = 12
[notify]
bell = false
webhook = "https://hooks.example.org/services/T000/SECRET"
on = ["run_failed", "job_started"]
"#;
        let (s, w) = Settings::parse("config.toml", text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.theme, "light");
        assert_eq!(s.executor, ExecutorKind::Slurm);
        assert!(s.read_only);
        assert_eq!(s.poll.interval, Duration::from_millis(500));
        assert_eq!(s.poll.metrics_interval, Duration::from_secs(1));
        assert_eq!(s.poll.max_interval, Duration::from_secs(300));
        assert_eq!(s.poll.rpc_budget_per_minute, 12);
        assert!(!s.notify.bell);
        assert_eq!(
            s.notify.on,
            [NotifyEvent::RunFailed, NotifyEvent::JobStarted]
        );
        let hook = s.notify.webhook.unwrap();
        assert_eq!(hook.host(), "hooks.example.org");
        assert!(hook.url().ends_with("SECRET"));
        assert!(!format!("{hook:?} {hook}").contains("SECRET"));
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let text = r#"theme = 3
exector = "slurm"
executor = "pbs"
read_only = "yes"
[poll]
interval = "soon"
max_interval = "1s"
rpc_budget_per_minute = 0
jitter = true
[notify]
webhook = "hooks.example.org/T000/SECRET"
on = ["run_end", "run_ended"]
"#;
        let (s, w) = Settings::parse("/home/ada/.config/sortie/config.toml", text);
        insta::assert_snapshot!(w.join("\n"));
        assert!(w.iter().all(|w| !w.contains("SECRET")));
        assert_eq!(s.theme, "dark");
        assert_eq!(s.executor, ExecutorKind::Local);
        assert!(!s.read_only);
        assert_eq!(s.poll.interval, Duration::from_secs(2));
        // max_interval was valid but shorter than interval, so it is raised to it.
        assert_eq!(s.poll.max_interval, Duration::from_secs(2));
        assert_eq!(s.poll.rpc_budget_per_minute, 6);
        assert_eq!(s.notify.webhook, None);
        assert_eq!(s.notify.on, [NotifyEvent::RunEnd]);
    }

    #[test]
    fn curves_never_refresh_faster_than_the_files_are_read() {
        let (s, w) = Settings::parse(
            "c.toml",
            "[poll]\ninterval = \"3s\"\nmetrics_interval = \"1s\"\n",
        );
        assert_eq!(s.poll.metrics_interval, Duration::from_secs(3));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("c.toml:3:"), "{}", w[0]);
        assert!(w[0].contains("`poll.metrics_interval` (1s) is shorter than `poll.interval` (3s)"));
        // Only `interval` set, above the default curve refresh: curves follow it.
        let (s, w) = Settings::parse("c.toml", "[poll]\ninterval = \"10s\"\n");
        assert_eq!(s.poll.metrics_interval, Duration::from_secs(10));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn syntax_error_means_defaults() {
        let (s, w) = Settings::parse("c.toml", "theme = \"dark\"\n[poll\n");
        assert_eq!(s, Settings::default());
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("c.toml:2:"), "{}", w[0]);
    }

    #[test]
    fn webhook_hides_credentials() {
        let w = Webhook::parse("https://user:pw@example.org:8443/x?token=1").unwrap();
        assert_eq!(w.host(), "example.org:8443");
        assert_eq!(w.to_string(), "example.org:8443/…");
        assert!(Webhook::parse("ftp://example.org").is_err());
        assert!(Webhook::parse("https:///path").is_err());
    }

    #[test]
    fn missing_file_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Settings::load_from(Some(dir.path())),
            (Settings::default(), Vec::new())
        );
        assert_eq!(Settings::load_from(None), (Settings::default(), Vec::new()));
    }
}
