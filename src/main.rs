fn main() {
    std::process::exit(layer::cli::main());
}
