//! The command line: parses arguments and wires the pipeline steps together.

pub fn main() -> std::process::ExitCode {
    todo!()
}
