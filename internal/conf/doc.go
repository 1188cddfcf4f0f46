// Package conf decodes layered configuration (built-in defaults, a TOML file,
// environment variables, already merged by koanf) into typed section structs,
// and reports every problem at once with the key and, where the key came from
// a file, the line.
//
// koanf does the layering; this package exists because mapstructure stops at
// type errors without naming TOML lines, and because secrets
// ("env:NAME", "<key>_file") must be resolved field by field.
package conf
