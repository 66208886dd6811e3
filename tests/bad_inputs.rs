//! Bad inputs get one clear, located line and exit 2, with nothing half-done: pipeline files that are not
//! UTF-8, names that cannot become file names, unclosed placeholders, inputs that never end, flags that
//! name nothing, and run directories or index files that are damaged.

mod common;

use common::Project;

/// `check` and `run` both refuse `pipeline` with exit 2, a message containing `want`, and no run.
#[track_caller]
fn refused_at_check_and_run(p: &Project, want: &str) {
    for cmd in ["check", "run"] {
        let out = p.sortie(&[cmd]);
        out.expect_code(2);
        assert!(out.stderr.contains(want), "{cmd}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{cmd}: not one line: {}",
            out.stderr
        );
    }
    assert!(p.run_ids().is_empty(), "a run was created");
}

#[test]
fn non_utf8_byte_is_located() {
    let p = Project::new();
    std::fs::write(
        p.path("sortie.toml"),
        b"[[step]]\nname = \"a\"\n# caf\xe9\nrun = \"true\"\n",
    )
    .unwrap();
    refused_at_check_and_run(&p, "sortie.toml:3:6: error: byte 0xe9 is not UTF-8");
}

#[test]
fn step_name_too_long_for_a_file_name() {
    let name = "a".repeat(5000);
    let p = Project::with_pipeline(&format!("[[step]]\nname = \"{name}\"\nrun = \"true\"\n"));
    refused_at_check_and_run(&p, "sortie.toml:2:8: error: step name `aaaa");
}

#[test]
fn matrix_instance_too_long_for_a_file_name() {
    let v = "v".repeat(260);
    let p = Project::with_pipeline(&format!(
        "[[step]]\nname = \"s\"\nrun = \"echo {{{{a}}}}\"\nmatrix = {{ a = [\"{v}\"] }}\n"
    ));
    refused_at_check_and_run(
        &p,
        "sortie.toml:4:10: error: the matrix of step `s` makes an instance whose directory name has 265 bytes",
    );
}

#[test]
fn unclosed_placeholder_is_located() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"s\"\nrun = \"echo {{x\"\nmatrix = { x = [1] }\n",
    );
    refused_at_check_and_run(
        &p,
        "sortie.toml:3:13: error: unclosed placeholder `{{x` in `run` of step `s`",
    );
}
