package main

import (
	"errors"
	"io"
)

func operate(args []string, stdout, stderr io.Writer) error {
	return usageError{errors.New("operator commands need the admin API")}
}
