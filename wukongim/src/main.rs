//! The `wukongim` server binary; everything lives in the library (`wukongim::cli`).
fn main() -> std::process::ExitCode {
    wukongim::cli::main()
}
