//! [`SlurmBackend`] over slurmrestd (JWT auth), decoding with the same JSON decoders as the CLI.
//! Picks the newest API version the server lists in `/openapi/v3` (or answers `ping` for), once.
//! Read-mostly: listings, details, partitions, cancel and signal. Submitting and job updates go
//! through the CLI backend (`Unsupported` here), because their request bodies changed every release.
//!
//! Uses reqwest's blocking client: create and call it from a blocking thread, not an async task.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{Local, TimeZone};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

use super::backend::{HistoryQuery, JobQuery, SlurmBackend, id_matches, matches};
use super::decode::{self, JobList, meta, nodes};
use super::error::{Result, SlurmError};
use super::model::{Job, Partition};
use super::process::{ProcessRunner, Runner};
use super::scontrol::JobDetails;

#[derive(Debug, Clone)]
pub struct RestConfig {
    /// e.g. `http://127.0.0.1:6820`.
    pub url: String,
    pub user: String,
    /// The JWT. When `None`, `scontrol token` makes one (and a fresh one after a 401).
    pub token: Option<String>,
    /// Force an API version like `v0.0.38` instead of the newest offered.
    pub api: Option<String>,
    pub timeout: Duration,
}

impl RestConfig {
    /// `SLURM_REST_URL` (required), `SLURM_JWT`, and the current user.
    pub fn from_env() -> Option<RestConfig> {
        let url = std::env::var("SLURM_REST_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        Some(RestConfig {
            url,
            user: crate::util::user(),
            token: std::env::var("SLURM_JWT").ok().filter(|t| !t.is_empty()),
            api: None,
            timeout: Duration::from_secs(30),
        })
    }
}

/// API versions in use: `NN` of `/slurm/v0.0.NN` and `/slurmdb/v0.0.NN`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiVersions {
    pub slurm: u8,
    pub slurmdb: Option<u8>,
}

pub struct RestBackend {
    client: Client,
    config: RestConfig,
    token: Mutex<Option<String>>,
    api: Mutex<Option<ApiVersions>>,
    rpcs: AtomicU64,
}

impl RestBackend {
    pub fn new(config: RestConfig) -> Result<RestBackend> {
        let client = Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| SlurmError::Spawn {
                cmd: "slurmrestd client".into(),
                message: e.to_string(),
            })?;
        Ok(RestBackend {
            client,
            token: Mutex::new(config.token.clone()),
            config,
            api: Mutex::new(None),
            rpcs: AtomicU64::new(0),
        })
    }

    /// The API versions used, discovered on first use.
    pub fn api(&self) -> Result<ApiVersions> {
        if let Some(api) = self.api.lock().ok().and_then(|a| *a) {
            return Ok(api);
        }
        let found = match self.config.api.as_deref().and_then(version_number) {
            Some(v) => ApiVersions {
                slurm: v,
                slurmdb: Some(v),
            },
            None => self.discover()?,
        };
        if let Ok(mut a) = self.api.lock() {
            *a = Some(found);
        }
        Ok(found)
    }

    fn discover(&self) -> Result<ApiVersions> {
        for spec in ["/openapi/v3", "/openapi"] {
            if let Ok(body) = self.get(spec)
                && let Ok(doc) = decode::parse_json(&body)
                && let Some(api) = versions_in_spec(&doc)
            {
                return Ok(api);
            }
        }
        // No spec: ask each version, newest first.
        for v in (meta::OLDEST_KNOWN_PARSER..=meta::NEWEST_KNOWN_PARSER).rev() {
            match self.get(&format!("/slurm/v0.0.{v}/ping")) {
                Ok(_) => {
                    return Ok(ApiVersions {
                        slurm: v,
                        slurmdb: Some(v),
                    });
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(_) => continue,
            }
        }
        Err(SlurmError::Unsupported {
            what: format!("no known slurmrestd API version at {}", self.config.url),
        })
    }

    fn token(&self, refresh: bool) -> Result<String> {
        if !refresh && let Some(t) = self.token.lock().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        self.rpcs.fetch_add(1, Ordering::Relaxed);
        let args = vec!["token".to_string(), "lifespan=3600".to_string()];
        let out = ProcessRunner.run("scontrol", &args, self.config.timeout)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let token = parse_token(&text).ok_or_else(|| {
            SlurmError::classify(
                "scontrol token",
                out.status,
                &String::from_utf8_lossy(&out.stderr),
            )
        })?;
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.clone());
        }
        Ok(token)
    }

    /// One request; a 401/403 with a token we minted ourselves gets one retry with a fresh token.
    fn request(&self, method: reqwest::Method, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.config.url.trim_end_matches('/'), path);
        let cmd = format!("{method} {path}");
        let mut refresh = false;
        loop {
            let token = self.token(refresh)?;
            self.rpcs.fetch_add(1, Ordering::Relaxed);
            let reply = self
                .client
                .request(method.clone(), &url)
                .header("X-SLURM-USER-NAME", &self.config.user)
                .header("X-SLURM-USER-TOKEN", token)
                .send()
                .map_err(|e| transport_error(&cmd, &e, self.config.timeout))?;
            let status = reply.status();
            let body = reply
                .bytes()
                .map_err(|e| transport_error(&cmd, &e, self.config.timeout))?
                .to_vec();
            let auth_failed = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            if auth_failed && !refresh && self.config.token.is_none() {
                refresh = true;
                continue;
            }
            return check(&cmd, status, body);
        }
    }

    fn get(&self, path: &str) -> Result<Vec<u8>> {
        self.request(reqwest::Method::GET, path)
    }

    fn jobs_reply(&self, path: &str, sacct: bool) -> Result<JobList> {
        let body = self.get(path)?;
        let list = if sacct {
            decode::sacct_json(&body)
        } else {
            decode::squeue_json(&body)
        };
        let list = list.map_err(|error| SlurmError::Decode {
            cmd: format!("GET {path}"),
            error,
        })?;
        if list.jobs.is_empty() && !list.errors.is_empty() {
            return Err(SlurmError::classify(
                &format!("GET {path}"),
                None,
                &list.errors.join("; "),
            ));
        }
        Ok(list)
    }

    fn unsupported<T>(&self, what: &str) -> Result<T> {
        Err(SlurmError::Unsupported {
            what: format!("{what} over slurmrestd (use the CLI backend)"),
        })
    }
}

impl SlurmBackend for RestBackend {
    fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>> {
        let v = self.api()?.slurm;
        let list = self.jobs_reply(&format!("/slurm/v0.0.{v}/jobs"), false)?;
        Ok(list
            .jobs
            .into_iter()
            .filter(|j| matches(j, query))
            .collect())
    }

    fn history(&self, query: &HistoryQuery) -> Result<Vec<Job>> {
        let api = self.api()?;
        let v = api.slurmdb.ok_or_else(|| SlurmError::Unsupported {
            what: "slurmdb API".into(),
        })?;
        // slurmrestd 22.05 rejects unix times here; a local ISO time with ':' escaped works.
        let mut path = format!(
            "/slurmdb/v0.0.{v}/jobs?start_time={}",
            iso_query(query.since)
        );
        if let Some(until) = query.until {
            path.push_str(&format!("&end_time={}", iso_query(until)));
        }
        let list = self.jobs_reply(&path, true)?;
        let shape = JobQuery {
            user: query.user.clone(),
            ids: query.ids.clone(),
            names: query.names.clone(),
        };
        Ok(list
            .jobs
            .into_iter()
            .filter(|j| matches(j, &shape) && j.end.is_none_or(|e| e >= query.since))
            .collect())
    }

    fn submit(&self, _script: &Path, _extra_args: &[String]) -> Result<String> {
        self.unsupported("submit")
    }

    fn cancel(&self, ids: &[String]) -> Result<()> {
        let v = self.api()?.slurm;
        for id in ids {
            self.request(
                reqwest::Method::DELETE,
                &format!("/slurm/v0.0.{v}/job/{id}"),
            )?;
        }
        Ok(())
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let v = self.api()?.slurm;
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().trim_start_matches("SIG").to_string())
            .unwrap_or_else(|_| signal.to_string());
        self.request(
            reqwest::Method::DELETE,
            &format!("/slurm/v0.0.{v}/job/{id}?signal={name}"),
        )
        .map(|_| ())
    }

    fn hold(&self, _ids: &[String]) -> Result<()> {
        self.unsupported("hold")
    }

    fn release(&self, _ids: &[String]) -> Result<()> {
        self.unsupported("release")
    }

    fn requeue(&self, _ids: &[String]) -> Result<()> {
        self.unsupported("requeue")
    }

    fn update_time_limit(&self, _id: &str, _limit: Option<Duration>) -> Result<()> {
        self.unsupported("time limit update")
    }

    fn job_details(&self, id: &str) -> Result<Vec<JobDetails>> {
        let v = self.api()?.slurm;
        match self.jobs_reply(&format!("/slurm/v0.0.{v}/job/{id}"), false) {
            Ok(list) => Ok(list
                .jobs
                .into_iter()
                .filter(|j| id_matches(j, id))
                .map(|job| JobDetails {
                    job,
                    fields: BTreeMap::new(),
                })
                .collect()),
            Err(SlurmError::InvalidJob { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn partitions(&self) -> Result<Vec<Partition>> {
        let v = self.api()?.slurm;
        let parts = self.get(&format!("/slurm/v0.0.{v}/partitions"))?;
        let node_list = self.get(&format!("/slurm/v0.0.{v}/nodes"))?;
        nodes::partitions_json(&parts, &node_list).map_err(|error| SlurmError::Decode {
            cmd: "GET partitions+nodes".into(),
            error,
        })
    }

    fn start_estimate(&self, _id: &str) -> Result<Option<i64>> {
        self.unsupported("start estimate")
    }

    fn rpc_count(&self) -> u64 {
        self.rpcs.load(Ordering::Relaxed)
    }
}

/// Non-2xx replies: overload statuses are transient; otherwise Slurm's `errors[]` decide.
fn check(cmd: &str, status: StatusCode, body: Vec<u8>) -> Result<Vec<u8>> {
    if status.is_success() {
        return Ok(body);
    }
    let code = Some(i32::from(status.as_u16()));
    let text = decode::parse_json(&body)
        .map(|v| decode::slurm_errors(&v).join("; "))
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(500)
                .collect()
        });
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Err(SlurmError::Transient {
            cmd: cmd.to_string(),
            message: format!("HTTP {status}: {text}"),
        }),
        _ => match SlurmError::classify(cmd, code, &text) {
            SlurmError::Failed {
                cmd,
                status,
                stderr,
            } => Err(SlurmError::Failed {
                cmd,
                status,
                stderr: format!("HTTP {}: {stderr}", status.unwrap_or(0)),
            }),
            other => Err(other),
        },
    }
}

fn transport_error(cmd: &str, e: &reqwest::Error, timeout: Duration) -> SlurmError {
    if e.is_timeout() {
        SlurmError::TimedOut {
            cmd: cmd.to_string(),
            after: timeout,
        }
    } else {
        // Connection refused/reset: slurmrestd restarting or overloaded.
        SlurmError::Transient {
            cmd: cmd.to_string(),
            message: e.to_string(),
        }
    }
}

/// The newest `/slurm/v0.0.NN/jobs` and `/slurmdb/v0.0.NN/jobs` in an OpenAPI document.
pub fn versions_in_spec(doc: &Value) -> Option<ApiVersions> {
    let paths = doc.get("paths")?;
    let keys: Vec<&str> = match paths {
        Value::Object(map) => map.keys().map(String::as_str).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let newest = |prefix: &str| {
        keys.iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let tail = &rest[digits.len()..];
                (tail == "/jobs" || tail == "/jobs/")
                    .then(|| digits.parse::<u8>().ok())
                    .flatten()
            })
            .max()
    };
    Some(ApiVersions {
        slurm: newest("/slurm/v0.0.")?,
        slurmdb: newest("/slurmdb/v0.0."),
    })
}

/// `v0.0.38` or `38` → 38.
fn version_number(v: &str) -> Option<u8> {
    v.trim().trim_start_matches("v0.0.").parse().ok()
}

/// `scontrol token` prints `SLURM_JWT=<token>`.
pub fn parse_token(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("SLURM_JWT="))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// A local ISO time for a query string, `:` escaped.
fn iso_query(unix: i64) -> String {
    Local.timestamp_opt(unix, 0).single().map_or_else(
        || "1970-01-01T00%3A00%3A00".to_string(),
        |t| t.format("%Y-%m-%dT%H%%3A%M%%3A%S").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_the_live_spec() {
        let doc = decode::parse_json(include_bytes!(
            "../../fixtures/slurm/live-rest-openapi-paths.json"
        ))
        .unwrap();
        assert_eq!(
            versions_in_spec(&doc),
            Some(ApiVersions {
                slurm: 38,
                slurmdb: Some(38)
            })
        );
        let newer = serde_json::json!({"paths": {"/slurm/v0.0.41/jobs/": {}, "/slurm/v0.0.42/jobs/": {},
            "/slurm/v0.0.42/jobs/state/": {}, "/slurmdb/v0.0.42/jobs/": {}, "/slurm/v0.0.43/ping/": {}}});
        assert_eq!(
            versions_in_spec(&newer),
            Some(ApiVersions {
                slurm: 42,
                slurmdb: Some(42)
            })
        );
        assert_eq!(versions_in_spec(&serde_json::json!({"paths": 3})), None);
        assert_eq!(version_number("v0.0.38"), Some(38));
    }

    #[test]
    fn tokens_and_errors() {
        assert_eq!(
            parse_token("SLURM_JWT=abc.def\n").as_deref(),
            Some("abc.def")
        );
        assert_eq!(parse_token("nothing"), None);
        let body = include_bytes!("../../fixtures/slurm/live-rest-slurm-v0.0.38-job-invalid.json")
            .to_vec();
        let e = check(
            "GET /slurm/v0.0.38/job/999999",
            StatusCode::INTERNAL_SERVER_ERROR,
            body,
        )
        .unwrap_err();
        assert!(matches!(e, SlurmError::InvalidJob { .. }), "{e}");
        let e = check("GET x", StatusCode::SERVICE_UNAVAILABLE, b"busy".to_vec()).unwrap_err();
        assert!(e.is_transient());
        let e = check(
            "GET x",
            StatusCode::UNAUTHORIZED,
            b"Authentication failure".to_vec(),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                SlurmError::Failed {
                    status: Some(401),
                    ..
                }
            ),
            "{e}"
        );
        assert!(iso_query(0).contains("%3A"));
    }
}
