fn main() {
    std::process::exit(runrs::cli::main());
}
