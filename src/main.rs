fn main() {
    // Panics and errors get readable reports; the exit code comes from the CLI.
    let _ = color_eyre::install();
    std::process::exit(sortie::cli::main());
}
