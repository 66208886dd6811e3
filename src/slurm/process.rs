//! Runs one Slurm command with a deadline and captures its output. Behind a trait so the CLI
//! backend's logic (fallbacks, classification, counting) is testable without a cluster.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{Result, SlurmError};

/// What a finished command left behind. `status` is `None` when a signal ended it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub trait Runner: Send + Sync {
    /// Runs `program args...`; `Err` only when it could not start or overran `timeout`.
    fn run(&self, program: &str, args: &[String], timeout: Duration) -> Result<Output>;
}

/// Runs real processes.
#[derive(Debug, Clone, Default)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    fn run(&self, program: &str, args: &[String], timeout: Duration) -> Result<Output> {
        let mut child = Command::new(program)
            .args(args)
            // A user's SLURM_TIME_FORMAT=relative would break the timestamp parsers.
            .env("SLURM_TIME_FORMAT", "standard")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SlurmError::Spawn {
                cmd: program.to_string(),
                message: e.to_string(),
            })?;
        // Drain both pipes on their own threads so a chatty command cannot block on a full pipe.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );

        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::TimedOut {
                        cmd: program.to_string(),
                        after: timeout,
                    });
                }
                Ok(None) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(SlurmError::Spawn {
                        cmd: program.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        };
        Ok(Output {
            status: status.code(),
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let args = vec![
            "-c".to_string(),
            "echo out; echo err >&2; exit 3".to_string(),
        ];
        let out = ProcessRunner
            .run("sh", &args, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            (out.status, out.stdout.as_slice(), out.stderr.as_slice()),
            (Some(3), &b"out\n"[..], &b"err\n"[..])
        );
    }

    #[test]
    fn times_out_and_reports_missing_programs() {
        let args = vec!["-c".to_string(), "sleep 5".to_string()];
        let t0 = Instant::now();
        let e = ProcessRunner
            .run("sh", &args, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(e, SlurmError::TimedOut { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(4));
        let e = ProcessRunner
            .run("/nonexistent/squeue", &[], Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(e, SlurmError::Spawn { .. }));
    }
}
