//go:build !linux

package queue

import "errors"

// freeBytes is only implemented on Linux; elsewhere the disk-space
// backpressure check is off and the error says so once in the log.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("queue: free space is only measured on Linux")
}
