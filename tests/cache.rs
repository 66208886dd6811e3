//! The cache: a second run reuses results; a changed input re-runs its step and what depends on it and
//! nothing else; `why` names the change; `--force` and a missing output re-run.

mod common;

use common::{Project, states, step_of};
use std::time::{Duration, SystemTime};

const PIPELINE: &str = r#"[pipeline]
name = "cached"

[[step]]
name = "prep"
inputs = ["data/raw.txt"]
outputs = ["prep.out"]
run = "echo prep >> count.txt; cp data/raw.txt prep.out"

[[step]]
name = "train"
needs = ["prep"]
matrix = { seed = [0, 1] }
outputs = ["model-{{seed}}.out"]
run = "echo train{{seed}} >> count.txt; cat prep.out > model-{{seed}}.out"

[[step]]
name = "eval"
needs = ["train"]
run = "echo eval >> count.txt"

[[step]]
name = "other"
inputs = ["other/*.txt"]
run = "echo other >> count.txt"
"#;

fn project() -> Project {
    let p = Project::with_pipeline(PIPELINE);
    p.write("data/raw.txt", "hello world\n");
    p.write("other/a.txt", "aaa\n");
    // Old files, so the index may keep their hashes: the test then also proves a stale hash is not used.
    let past = SystemTime::now() - Duration::from_secs(3600);
    for f in ["data/raw.txt", "other/a.txt"] {
        std::fs::File::options()
            .write(true)
            .open(p.path(f))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    p
}

fn all_states(p: &Project) -> Vec<(String, String)> {
    states(&p.status(None))
}

#[test]
fn second_run_is_cached_and_fast() {
    let p = project();
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("count.txt").len(), 5);
    let out = p.sortie(&["run"]);
    out.ok();
    assert_eq!(
        p.lines("count.txt").len(),
        5,
        "a cached step ran again: {:?}",
        p.lines("count.txt")
    );
    for (name, state) in all_states(&p) {
        assert_eq!(state, "cached", "{name}");
    }
    assert!(
        out.elapsed < Duration::from_secs(10),
        "a fully cached run took {:?}",
        out.elapsed
    );
    let st = p.status(None);
    assert_eq!(st["state"], "succeeded");
    // A cached step points at the attempt whose result it reuses (in the first run).
    let first = p
        .run_ids()
        .into_iter()
        .find(|r| *r != st["run"].as_str().unwrap())
        .unwrap();
    let dir = step_of(&st, "prep")["dir"].as_str().unwrap().to_string();
    assert!(
        dir.contains(&first),
        "cached prep should reuse run {first}'s result, dir is {dir}"
    );
}

#[test]
fn one_changed_byte_reruns_the_step_and_its_dependents_only() {
    let p = project();
    p.sortie(&["run"]).ok();
    // Same size, one byte different.
    p.write("data/raw.txt", "hello worle\n");
    let before = p.lines("count.txt").len();

    let why = p.sortie(&["why", "--json"]);
    why.ok();
    let v = why.json();
    let entry = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["step"] == n)
            .unwrap_or_else(|| panic!("no {n} in {v}"))
            .clone()
    };
    let prep = entry("prep");
    assert_eq!(prep["reruns"], true);
    let reasons = prep["reasons"].to_string();
    assert!(
        reasons.contains("data/raw.txt"),
        "why should name the input: {reasons}"
    );
    assert_eq!(entry("train[seed=0]")["reruns"], true);
    assert_eq!(entry("other")["reruns"], false);
    assert_eq!(entry("other")["reasons"], serde_json::json!([]));

    let text = p.sortie(&["why", "prep"]);
    text.ok();
    assert!(
        text.stdout.contains("input data/raw.txt changed"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("other"), "{}", text.stdout);

    p.sortie(&["run"]).ok();
    let mut ran: Vec<String> = p.lines("count.txt")[before..].to_vec();
    ran.sort();
    assert_eq!(ran, ["eval", "prep", "train0", "train1"]);
    let st = all_states(&p);
    let get = |n: &str| st.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("prep"), "succeeded");
    assert_eq!(get("train[seed=0]"), "succeeded");
    assert_eq!(get("eval"), "succeeded");
    assert_eq!(get("other"), "cached");
    assert_eq!(p.read("model-1.out"), "hello worle\n");

    // Now everything is up to date again.
    let why = p.sortie(&["why", "--json"]);
    why.ok();
    for e in why.json().as_array().unwrap() {
        assert_eq!(e["reruns"], false, "{e}");
    }
}

#[test]
fn a_new_file_matching_an_input_glob_reruns() {
    let p = project();
    p.sortie(&["run"]).ok();
    p.write("other/b.txt", "new\n");
    let why = p.sortie(&["why", "other"]);
    why.ok();
    assert!(why.stdout.contains("other/b.txt"), "{}", why.stdout);
    let before = p.lines("count.txt").len();
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("count.txt")[before..], ["other"]);
}

#[test]
fn force_reruns_everything_or_the_named_steps() {
    let p = project();
    p.sortie(&["run"]).ok();
    let n = p.lines("count.txt").len();
    p.sortie(&["run", "--force", "train"]).ok();
    let mut ran: Vec<String> = p.lines("count.txt")[n..].to_vec();
    ran.sort();
    // The forced step runs; its outputs did not change, so eval may stay cached.
    assert!(ran.contains(&"train0".to_string()) && ran.contains(&"train1".to_string()));
    assert!(!ran.contains(&"prep".to_string()) && !ran.contains(&"other".to_string()));
    let n = p.lines("count.txt").len();
    p.sortie(&["run", "--force"]).ok();
    assert_eq!(p.lines("count.txt").len() - n, 5, "--force must run all");
    for (name, state) in all_states(&p) {
        assert_eq!(state, "succeeded", "{name}");
    }
    let bad = p.sortie(&["run", "--force", "nosuchstep"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("nosuchstep"), "{}", bad.stderr);
}

#[test]
fn missing_output_forces_a_rerun() {
    let p = project();
    p.sortie(&["run"]).ok();
    std::fs::remove_file(p.path("model-0.out")).unwrap();
    let why = p.sortie(&["why", "train[seed=0]"]);
    why.ok();
    assert!(
        why.stdout.contains("output model-0.out is missing"),
        "{}",
        why.stdout
    );
    let n = p.lines("count.txt").len();
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("count.txt")[n..], ["train0"]);
    assert!(p.path("model-0.out").exists());
    let st = all_states(&p);
    let get = |n: &str| st.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(get("train[seed=0]"), "succeeded");
    assert_eq!(get("train[seed=1]"), "cached");
}

#[test]
fn a_step_that_does_not_write_its_output_fails() {
    let p = Project::with_pipeline(
        "[[step]]\nname = \"lazy\"\noutputs = [\"result.txt\"]\nrun = \"echo nothing\"\n",
    );
    p.sortie(&["run"]).expect_code(1);
    let st = p.status(None);
    let s = step_of(&st, "lazy");
    assert_eq!(s["state"], "failed");
    assert!(
        s["reason"].as_str().unwrap_or("").contains("result.txt"),
        "{s}"
    );
}

#[test]
fn changing_the_command_reruns() {
    let p = project();
    p.sortie(&["run"]).ok();
    p.write(
        "sortie.toml",
        &PIPELINE.replace("echo eval >> count.txt", "echo eval2 >> count.txt"),
    );
    let why = p.sortie(&["why", "eval"]);
    why.ok();
    assert!(why.stdout.contains("the command changed"), "{}", why.stdout);
    let n = p.lines("count.txt").len();
    p.sortie(&["run"]).ok();
    assert_eq!(p.lines("count.txt")[n..], ["eval2"]);
}

#[test]
fn needs_of_a_cached_upstream_point_at_its_reused_result() {
    let p = Project::with_pipeline(
        r#"[[step]]
name = "up"
matrix = { k = [1, 2] }
outputs = ["up-{{k}}.txt"]
run = "echo {{k}} > up-{{k}}.txt; echo {{k}} > \"$SORTIE_STEP_DIR/result\""

[[step]]
name = "down"
needs = ["up"]
run = '''
printf '%s' "$SORTIE_NEEDS" > needs.json
'''
"#,
    );
    p.sortie(&["run"]).ok();
    p.sortie(&["run", "--force", "down"]).ok();
    let st = p.status(None);
    assert_eq!(step_of(&st, "up[k=1]")["state"], "cached");
    assert_eq!(step_of(&st, "down")["state"], "succeeded");
    let needs: serde_json::Value = serde_json::from_str(&p.read("needs.json")).unwrap();
    let dirs = needs["up"].as_array().expect("up in SORTIE_NEEDS");
    assert_eq!(dirs.len(), 2, "{needs}");
    for d in dirs {
        let d = std::path::Path::new(d.as_str().unwrap());
        assert!(
            d.join("result").is_file(),
            "SORTIE_NEEDS names {} which holds no result",
            d.display()
        );
    }
}
