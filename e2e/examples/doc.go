// Package examples holds the tests of the user-facing examples in
// ../../examples. It is a module of its own so that k8s.io/api and the ECS
// types stay out of secrets-init's go.mod; it does not import secrets-init
// either (the binary and a small parser helper are built from the
// repository by TestMain), so the product's dependencies can move without
// this go.mod.
package examples
