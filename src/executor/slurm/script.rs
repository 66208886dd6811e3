//! The files a Slurm attempt runs from: `job.sh` (the batch script, with `#SBATCH` lines for what the
//! step asks for) and `command.sh` (the step's own commands) in the attempt dir, plus a small driver
//! script per job array that starts the right element's `job.sh`.
//!
//! `job.sh` writes the exit-code sentinel itself: the number the step exited with, or `signal:15`
//! when Slurm stops it (scancel, time limit). It forwards the `USR2` that `--signal=B:USR2@90` sends
//! 90 s before the end to the step (and touches `usr2` in the attempt dir), so a training loop can
//! checkpoint. The step starts with USR2 ignored: a program that installs a handler gets the notice,
//! one that does not is not killed by it (which would turn a TIMEOUT into an ordinary failure).

use crate::pipeline::Resources;
use crate::runlog::events::SlurmRequest;
use std::path::{Path, PathBuf};

/// Everything `job.sh` needs.
pub struct JobScript<'a> {
    pub run_id: &'a str,
    pub step: &'a str,
    pub attempt: u32,
    pub name: &'a str,
    pub comment: &'a str,
    pub dir: &'a Path,
    pub workdir: &'a Path,
    pub env: &'a [(String, String)],
    pub resources: &'a Resources,
    pub request: &'a SlurmRequest,
    /// The step's `timeout`, used as the time limit when `resources.time` is not set.
    pub timeout_s: Option<f64>,
    /// An array element: Slurm's `-o`/`-e` point at the array's files, so the script opens its own.
    pub element: bool,
}

pub(crate) fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", s.replace('\0', "").replace('\'', r"'\''")))
}

/// The shortest time limit that gets the USR2 warning 90 s before the end.
const MIN_TIME_FOR_WARNING: u64 = 300;

/// Slurm's `-t` value: minutes rounded up, at least one.
pub fn time_limit(secs: u64) -> String {
    crate::slurm::backend::format_time_limit(Some(std::time::Duration::from_secs(secs)))
}

/// The options that come from the step's resources and the attempt's request (not the job's identity).
pub fn resource_options(r: &Resources, req: &SlurmRequest, timeout_s: Option<f64>) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(p) = &r.partition {
        o.push(format!("--partition={p}"));
    }
    if let Some(a) = &r.account {
        o.push(format!("--account={a}"));
    }
    if let Some(q) = &r.qos {
        o.push(format!("--qos={q}"));
    }
    let time = req
        .time_s
        .or(r.time_s)
        .or(timeout_s.map(|t| t.ceil() as u64));
    if let Some(t) = time {
        o.push(format!("--time={}", time_limit(t)));
    }
    // Slurm may send the warning up to 60 s early: with a short limit it would come at the start.
    if time.is_none_or(|t| t >= MIN_TIME_FOR_WARNING) {
        o.push("--signal=B:USR2@90".to_string());
    }
    if let Some(m) = req.mem_mb.or(r.mem_mb) {
        o.push(format!("--mem={m}M"));
    }
    if let Some(c) = r.cpus {
        o.push(format!("--cpus-per-task={c}"));
    }
    if let Some(g) = r.gpus.filter(|&g| g > 0) {
        o.push(format!("--gpus={g}"));
    }
    if !req.exclude.is_empty() {
        o.push(format!("--exclude={}", req.exclude.join(",")));
    }
    o.extend(r.sbatch.iter().cloned());
    o
}

/// An option can sit on an `#SBATCH` line only if sbatch reads it back whole.
fn fits_directive(opt: &str) -> bool {
    !opt.is_empty()
        && !opt
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
}

/// Splits options into `#SBATCH` lines and the ones that must go on sbatch's command line.
pub fn directives(options: &[String]) -> (String, Vec<String>) {
    let mut lines = String::new();
    let mut args = Vec::new();
    for o in options {
        if fits_directive(o) {
            lines.push_str("#SBATCH ");
            lines.push_str(o);
            lines.push('\n');
        } else {
            args.push(o.clone());
        }
    }
    (lines, args)
}

/// The identity options of a job: name, comment, log files, working dir.
pub fn identity_options(
    name: &str,
    comment: &str,
    out: &Path,
    err: &Path,
    workdir: &Path,
) -> Vec<String> {
    vec![
        format!("--job-name={name}"),
        format!("--comment={comment}"),
        format!("--output={}", out.display()),
        format!("--error={}", err.display()),
        format!("--chdir={}", workdir.display()),
    ]
}

/// `--dependency=afterok:...` and `--kill-on-invalid-dep=yes`, or nothing.
pub fn dependency_args(ids: &[String]) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
    }
    vec![
        format!("--dependency=afterok:{}", ids.join(":")),
        "--kill-on-invalid-dep=yes".to_string(),
    ]
}

/// `job.sh`: `#SBATCH` header (for a single job; an array's driver carries the header instead),
/// environment, sentinel handling, the step. Returns the script and the options that could not be
/// written as `#SBATCH` lines.
pub fn job_script(j: &JobScript<'_>) -> (String, Vec<String>) {
    let mut s = String::from("#!/bin/bash\n");
    let mut extra = Vec::new();
    if !j.element {
        let mut opts = identity_options(
            j.name,
            j.comment,
            &j.dir.join(crate::runlog::paths::STDOUT_FILE),
            &j.dir.join(crate::runlog::paths::STDERR_FILE),
            j.workdir,
        );
        opts.extend(resource_options(j.resources, j.request, j.timeout_s));
        let (lines, args) = directives(&opts);
        s.push_str(&lines);
        extra = args;
    }
    s.push_str(&format!(
        "# sortie: run {:?} step {:?} attempt {}\n",
        j.run_id, j.step, j.attempt
    ));
    // First, before anything else can run: USR2's default action would kill the batch shell.
    s.push_str(USR2_TRAP);
    // The submitting shell's environment comes along (sbatch's default); the step's own variables
    // are written here so that a resubmission from another shell or login node sees the same ones.
    for (k, v) in j.env {
        s.push_str(&format!("export {k}={}\n", quote(v)));
    }
    s.push_str(&format!(
        "cd {} || {{ echo \"sortie: cannot enter the workdir\" >&2; exit 1; }}\n",
        quote(&j.workdir.to_string_lossy())
    ));
    if j.element {
        s.push_str("exec >\"$SORTIE_STEP_DIR/stdout.log\" 2>\"$SORTIE_STEP_DIR/stderr.log\"\n");
    }
    s.push_str(SENTINEL_AND_RUN);
    (s, extra)
}

/// Runs `command.sh` in the background, in a process group of its own (so USR2 and TERM reach every
/// process of the step and not the batch shell), so that traps fire at once (bash defers them while a
/// foreground child runs), waits for it through any number of trapped signals, and records how it
/// ended. A requeued job starts by removing the previous incarnation's sentinel.
const SENTINEL_AND_RUN: &str = r#"rm -f "$SORTIE_STEP_DIR/exit_code"
__sortie_exit() { printf '%s\n' "$1" > "$SORTIE_STEP_DIR/exit_code.tmp" && mv -f "$SORTIE_STEP_DIR/exit_code.tmp" "$SORTIE_STEP_DIR/exit_code"; }
trap '__sortie_exit signal:15; [ -n "$__sortie_child" ] && kill -TERM -- -"$__sortie_child" 2>/dev/null; exit 143' TERM
( trap '' USR2; exec setsid bash --noprofile --norc -e -o pipefail "$SORTIE_STEP_DIR/command.sh" ) &
__sortie_child=$!
while kill -0 "$__sortie_child" 2>/dev/null; do wait "$__sortie_child"; done
wait "$__sortie_child"
__sortie_rc=$?
__sortie_exit "$__sortie_rc"
exit "$__sortie_rc"
"#;

/// Forwards USR2 to the step (once it runs) and leaves a mark a step can poll for.
const USR2_TRAP: &str = "__sortie_child=\ntrap '[ -n \"$SORTIE_STEP_DIR\" ] && : > \"$SORTIE_STEP_DIR/usr2\"; [ -n \"$__sortie_child\" ] && kill -USR2 -- -\"$__sortie_child\" 2>/dev/null' USR2\n";

/// One array element: its index and its attempt dir (holding its `job.sh`).
pub struct Element {
    pub index: u32,
    pub dir: PathBuf,
}

/// The driver of a job array: the header shared by all elements, then a `case` that starts the
/// element's own `job.sh`. Returns the script and the options that could not be `#SBATCH` lines.
pub fn array_driver(
    options: &[String],
    run_id: &str,
    group: &str,
    elements: &[Element],
) -> (String, Vec<String>) {
    let mut s = String::from("#!/bin/bash\n");
    let (lines, extra) = directives(options);
    s.push_str(&lines);
    s.push_str(&format!(
        "# sortie: run {:?} step {:?}, {} elements\n",
        run_id,
        group,
        elements.len()
    ));
    // Until the element's own script sets its trap, USR2 must not kill the shell.
    s.push_str("trap ':' USR2\n");
    s.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
    for e in elements {
        s.push_str(&format!(
            "{}) exec bash --noprofile --norc {} ;;\n",
            e.index,
            quote(&e.dir.join("job.sh").to_string_lossy())
        ));
    }
    s.push_str(
        "*) echo \"sortie: this array has no element $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n",
    );
    (s, extra)
}

/// `--array=0-N` with the throttle, for `n` elements.
pub fn array_option(n: usize, throttle: Option<u32>) -> String {
    let mut o = format!("--array=0-{}", n.saturating_sub(1));
    if let Some(t) = throttle {
        o.push_str(&format!("%{t}"));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> Resources {
        Resources {
            cpus: Some(2),
            mem_mb: Some(4096),
            gpus: Some(1),
            time_s: Some(90),
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            qos: Some("normal".into()),
            sbatch: vec!["--constraint=a100".into(), "--mail-user=a b".into()],
        }
    }

    #[test]
    fn resources_become_options_and_requests_override_them() {
        let req = SlurmRequest {
            mem_mb: Some(8192),
            time_s: None,
            exclude: vec!["n1".into(), "n2".into()],
        };
        let o = resource_options(&res(), &req, None);
        assert_eq!(
            o,
            [
                "--partition=gpu",
                "--account=lab",
                "--qos=normal",
                "--time=0-00:02:00",
                "--mem=8192M",
                "--cpus-per-task=2",
                "--gpus=1",
                "--exclude=n1,n2",
                "--constraint=a100",
                "--mail-user=a b",
            ]
        );
        // The step's timeout is the limit when no time is asked for.
        let o = resource_options(&Resources::default(), &SlurmRequest::default(), Some(61.0));
        assert_eq!(o, ["--time=0-00:02:00"]);
        // A long enough limit (or none) gets the 90 s warning.
        let o = resource_options(&Resources::default(), &SlurmRequest::default(), Some(600.0));
        assert_eq!(o, ["--time=0-00:10:00", "--signal=B:USR2@90"]);
        let o = resource_options(&Resources::default(), &SlurmRequest::default(), None);
        assert_eq!(o, ["--signal=B:USR2@90"]);
    }

    #[test]
    fn options_with_spaces_go_on_the_command_line() {
        let (lines, extra) = directives(&[
            "--mem=1M".into(),
            "--comment=a b".into(),
            "--output=/x y/out".into(),
        ]);
        assert_eq!(lines, "#SBATCH --mem=1M\n");
        assert_eq!(extra, ["--comment=a b", "--output=/x y/out"]);
    }

    #[test]
    fn job_script_has_header_env_and_sentinel() {
        let dir = Path::new("/runs/r1/steps/train/1");
        let env = vec![
            ("SORTIE_STEP_DIR".to_string(), dir.display().to_string()),
            ("X".to_string(), "it's $HOME".to_string()),
        ];
        let req = SlurmRequest::default();
        let r = res();
        let j = JobScript {
            run_id: "r1",
            step: "train",
            attempt: 1,
            name: "train.1.r1",
            comment: "sortie:r1:train:1",
            dir,
            workdir: Path::new("/work"),
            env: &env,
            resources: &r,
            request: &req,
            timeout_s: None,
            element: false,
        };
        let (s, extra) = job_script(&j);
        assert!(s.starts_with("#!/bin/bash\n#SBATCH --job-name=train.1.r1\n"));
        assert!(s.contains("#SBATCH --output=/runs/r1/steps/train/1/stdout.log\n"));
        assert!(!s.contains("--signal"));
        assert!(s.contains("#SBATCH --mem=4096M\n"));
        // The value survives the shell exactly.
        let line = s.lines().find(|l| l.starts_with("export X=")).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{line}; printf %s \"$X\""))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME");
        assert!(s.contains("__sortie_exit \"$__sortie_rc\""));
        assert!(!s.contains("exec >"));
        assert_eq!(extra, ["--mail-user=a b"]);
        let element = JobScript { element: true, ..j };
        let (s, extra) = job_script(&element);
        assert!(!s.contains("#SBATCH"));
        assert!(s.contains("exec >\"$SORTIE_STEP_DIR/stdout.log\""));
        assert!(extra.is_empty());
    }

    #[test]
    fn array_driver_dispatches_by_task_id() {
        let (s, _) = array_driver(
            &["--array=0-1%1".into(), "--mem=1M".into()],
            "r1",
            "train",
            &[
                Element {
                    index: 0,
                    dir: "/a/0".into(),
                },
                Element {
                    index: 1,
                    dir: "/a b/1".into(),
                },
            ],
        );
        assert!(s.contains("#SBATCH --array=0-1%1\n"));
        assert!(s.contains("0) exec bash --noprofile --norc /a/0/job.sh ;;\n"));
        assert!(s.contains("1) exec bash --noprofile --norc '/a b/1/job.sh' ;;\n"));
        assert_eq!(array_option(3, Some(2)), "--array=0-2%2");
        assert_eq!(array_option(1, None), "--array=0-0");
        assert_eq!(
            dependency_args(&["1".into(), "2_3".into()]),
            ["--dependency=afterok:1:2_3", "--kill-on-invalid-dep=yes"]
        );
    }

    /// The script really records the exit code and survives a forwarded USR2.
    #[test]
    fn sentinel_records_exit_codes_and_forwards_usr2() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("command.sh"),
            "JOB_PID=$PPID python3 -c 'import os, signal, time\nsignal.signal(signal.SIGUSR2, lambda *a: open(\"got\", \"w\").write(\"got-usr2\\n\"))\nos.kill(int(os.environ[\"JOB_PID\"]), signal.SIGUSR2)\ntime.sleep(0.5)'\nsleep 0.2\nexit 7\n",
        )
        .unwrap();
        let env = vec![("SORTIE_STEP_DIR".to_string(), dir.display().to_string())];
        let (req, r) = (SlurmRequest::default(), Resources::default());
        let j = JobScript {
            run_id: "r",
            step: "s",
            attempt: 1,
            name: "n",
            comment: "c",
            dir,
            workdir: dir,
            env: &env,
            resources: &r,
            request: &req,
            timeout_s: None,
            element: false,
        };
        let (s, _) = job_script(&j);
        std::fs::write(dir.join("job.sh"), s).unwrap();
        let st = std::process::Command::new("bash")
            .arg(dir.join("job.sh"))
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(7));
        assert_eq!(
            std::fs::read_to_string(dir.join("exit_code")).unwrap(),
            "7\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("got")).unwrap(),
            "got-usr2\n"
        );
        assert!(dir.join("usr2").exists());
    }
}
