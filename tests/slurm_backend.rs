//! One choice of Slurm backend for every command and the engine: `SORTIE_SLURM_BACKEND` is read
//! (and refused when bad) by all of them, not only by `sortie jobs`. No cluster needed.

mod common;

use common::Project;

const PIPELINE: &str = "[pipeline]\nname = \"one\"\n\n[[step]]\nname = \"a\"\nrun = \"true\"\n";

#[test]
fn a_bad_backend_choice_is_refused_by_every_command_in_one_line() {
    let p = Project::with_pipeline(PIPELINE);
    for args in [&["runs"][..], &["status"], &["jobs"], &["check"]] {
        let out = p.sortie_env(args, &[("SORTIE_SLURM_BACKEND", "slurmrestd")]);
        out.expect_code(2);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines,
            ["sortie: error: SORTIE_SLURM_BACKEND=\"slurmrestd\": expected `cli` or `rest`"],
            "sortie {args:?}"
        );
    }
}

#[test]
fn the_engine_honours_the_backend_choice() {
    // Slurm's commands exist (they would be used if the choice were ignored) but must not run.
    let p = Project::with_pipeline(PIPELINE);
    let bin = p.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["sbatch", "squeue", "sacct", "scancel", "scontrol"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            "#!/bin/sh\necho \"$0 ran\" >> \"$(dirname \"$0\")/ran\"\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = p.cmd(&["run", "sortie.toml", "--executor", "slurm"]);
    cmd.env("PATH", path)
        .env("SORTIE_SLURM_BACKEND", "rest")
        .env_remove("SLURM_REST_URL");
    let out = common::run_with_deadline(cmd, std::time::Duration::from_secs(60));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("the REST backend needs SLURM_REST_URL"),
        "{}",
        out.stderr
    );
    assert!(!bin.join("ran").exists(), "a Slurm command ran");
}
