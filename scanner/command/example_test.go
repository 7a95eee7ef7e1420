package command_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/portcullis-mail/portcullis/scanner/command"
)

func Example() {
	// A stand-in for clamscan: exit 1 and "FILE: NAME FOUND" when infected.
	e, err := command.New(command.Config{
		Path: "/bin/sh",
		Args: []string{"-c", `grep -q X5O "$1" && { echo "$1: Test-Signature FOUND"; exit 1; }; exit 0`, "sh", "{}"},
		Name: "sh-scanner",
	})
	if err != nil {
		panic(err)
	}
	for _, s := range []string{"hello", "X5O!..."} {
		res, err := e.Scan(context.Background(), strings.NewReader(s))
		fmt.Println(res.Signatures, err)
	}
	// Output:
	// [] <nil>
	// [Test-Signature] <nil>
}
