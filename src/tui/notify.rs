//! Notifications when a run ends or a step fails: the terminal bell and an optional webhook (a JSON POST
//! that ntfy and Slack both accept). The webhook's address may hold a secret, so messages about it name
//! only its host.

use super::config::{NotifyEvent, Settings};
use super::data::Snapshot;
use crate::runlog::{RunState, StepState};

#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub event: NotifyEvent,
    pub run: String,
    pub step: Option<String>,
    pub text: String,
}

/// What changed between two snapshots that is worth a notification.
pub fn notices(prev: &Snapshot, next: &Snapshot) -> Vec<Notice> {
    let mut out = Vec::new();
    for r in &next.runs {
        let Some(old) = prev.runs.iter().find(|o| o.id == r.id) else {
            continue;
        };
        if old.state == RunState::Running && r.state != RunState::Running {
            out.push(Notice {
                event: NotifyEvent::RunEnd,
                run: r.id.clone(),
                step: None,
                text: format!("sortie: run {} ({}) {}", r.id, r.pipeline, r.state),
            });
            if r.state == RunState::Failed {
                out.push(Notice {
                    event: NotifyEvent::RunFailed,
                    run: r.id.clone(),
                    step: None,
                    text: format!(
                        "sortie: run {} ({}) failed: {} of {} steps failed",
                        r.id, r.pipeline, r.steps_failed, r.steps_total
                    ),
                });
            }
        }
    }
    // Step states are only known for the run on screen, and only compared within that run.
    if prev.run.is_some() && prev.run == next.run {
        for s in &next.steps {
            let was = prev
                .steps
                .iter()
                .find(|o| o.name == s.name)
                .map(|o| o.state);
            if s.state == StepState::Failed && was.is_some_and(|w| w != StepState::Failed) {
                let why = s.reason.as_deref().unwrap_or("failed");
                out.push(Notice {
                    event: NotifyEvent::StepFailed,
                    run: s.run.clone(),
                    step: Some(s.name.clone()),
                    text: format!("sortie: step {} of run {} failed ({why})", s.name, s.run),
                });
            }
        }
    }
    out
}

/// The JSON body: `text` for Slack, `message`/`title` for ntfy, and the facts for anyone else.
pub fn payload(n: &Notice) -> serde_json::Value {
    serde_json::json!({
        "text": n.text,
        "message": n.text,
        "title": "sortie",
        "event": n.event.as_str(),
        "run": n.run,
        "step": n.step,
    })
}

/// Rings the bell and/or posts to the webhook, as the settings ask. Returns an error message to show
/// (never containing the webhook's address beyond its host).
pub fn deliver(n: &Notice, settings: &Settings) -> Option<String> {
    if !settings.notify.on.contains(&n.event) {
        return None;
    }
    if settings.notify.bell {
        use std::io::Write;
        let _ = std::io::stdout().write_all(b"\x07");
        let _ = std::io::stdout().flush();
    }
    let hook = settings.notify.webhook.as_ref()?;
    match post(hook.url(), &payload(n)) {
        Ok(()) => None,
        Err(e) => Some(format!("webhook to {} failed: {e}", hook.host())),
    }
}

/// POSTs the JSON body. Errors are reduced to their kind so the URL never leaks into messages.
pub fn post(url: &str, body: &serde_json::Value) -> Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|_| "cannot build an HTTP client".to_string())?;
    let resp = client.post(url).json(body).send().map_err(|e| {
        if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "request failed".to_string()
        }
    })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", resp.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{RunRow, StepRow};
    use std::io::{Read, Write};

    fn run(id: &str, state: RunState) -> RunRow {
        RunRow {
            id: id.into(),
            dir: "/tmp/x".into(),
            pipeline: "p".into(),
            file: "f".into(),
            workdir: "w".into(),
            host: "h".into(),
            user: "u".into(),
            created: 0.0,
            ended: None,
            state,
            engine_host: None,
            engine_pid: None,
            steps_total: 3,
            steps_done: 1,
            steps_failed: 1,
        }
    }

    fn step(name: &str, state: StepState) -> StepRow {
        StepRow {
            run: "r1".into(),
            name: name.into(),
            group: name.into(),
            params: serde_json::Value::Null,
            needs: vec![],
            state,
            reason: Some("exit code 2".into()),
            attempts: 1,
            exit_code: None,
            signal: None,
            started: None,
            ended: None,
            dir: None,
            cache_key: None,
            job_id: None,
        }
    }

    #[test]
    fn run_end_and_step_failure_are_noticed_once() {
        let prev = Snapshot {
            runs: vec![run("r1", RunState::Running)],
            run: Some("r1".into()),
            steps: vec![step("a", StepState::Running)],
            ..Default::default()
        };
        let next = Snapshot {
            runs: vec![run("r1", RunState::Failed)],
            run: Some("r1".into()),
            steps: vec![step("a", StepState::Failed)],
            ..Default::default()
        };
        let n = notices(&prev, &next);
        let kinds: Vec<NotifyEvent> = n.iter().map(|x| x.event).collect();
        assert_eq!(
            kinds,
            [
                NotifyEvent::RunEnd,
                NotifyEvent::RunFailed,
                NotifyEvent::StepFailed
            ]
        );
        assert!(notices(&next, &next).is_empty());
        // A run first seen already finished is not news.
        assert!(notices(&Snapshot::default(), &next).is_empty());
    }

    #[test]
    fn webhook_posts_json_and_errors_hide_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            // Read until the JSON body has arrived.
            while !String::from_utf8_lossy(&got).contains("\"title\"") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let n = Notice {
            event: NotifyEvent::RunEnd,
            run: "r1".into(),
            step: None,
            text: "sortie: run r1 succeeded".into(),
        };
        post(
            &format!("http://127.0.0.1:{port}/secret-topic"),
            &payload(&n),
        )
        .unwrap();
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /secret-topic"), "{req}");
        assert!(
            req.contains("\"text\":\"sortie: run r1 succeeded\""),
            "{req}"
        );
        // Nothing listens on this port now: the error names no URL.
        let err = post(
            &format!("http://127.0.0.1:{port}/secret-topic"),
            &payload(&n),
        )
        .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
