package queue_test

import (
	"testing"

	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/queuetest"
)

func TestSpoolConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		dir := t.TempDir()
		return func() (queue.Store, error) { return queue.OpenSpool(dir, queue.SpoolConfig{}) }
	})
}

func TestSpoolConformanceSmallSegments(t *testing.T) {
	// Tiny segments force rotation, relocation and segment collection
	// under the same suite.
	queuetest.Run(t, func(t *testing.T) queuetest.Opener {
		dir := t.TempDir()
		return func() (queue.Store, error) {
			return queue.OpenSpool(dir, queue.SpoolConfig{SegmentBytes: 4096, MaxBatchBytes: 8192})
		}
	})
}
