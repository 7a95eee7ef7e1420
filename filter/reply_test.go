package filter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type replyErr struct{ r Reply }

func (e replyErr) Error() string { return "custom" }
func (e replyErr) Reply() Reply  { return e.r }

func TestErrorReply(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Reply
	}{
		{"nil", nil, Reply{250, "2.0.0", "OK"}},
		{"message size", &LimitError{Limit: LimitMessageBytes, Max: 10}, Reply{552, "5.3.4", "Message too big"}},
		{"wrapped message size", fmt.Errorf("queue: %w", &LimitError{Limit: LimitMessageBytes, Max: 10}), Reply{552, "5.3.4", "Message too big"}},
		{"header size", &LimitError{Limit: LimitHeaderBytes}, Reply{552, "5.3.4", "Message header too big"}},
		{"depth", &LimitError{Limit: LimitDepth}, Reply{554, "5.6.0", "Message structure exceeds limits"}},
		{"unknown limit", &LimitError{Limit: "widgets"}, replyLocal},
		{"deadline", fmt.Errorf("clamd: %w", context.DeadlineExceeded), replyTimeout},
		{"cancelled", context.Canceled, replyTimeout},
		{"not ready", fmt.Errorf("rules: %w", ErrNotReady), replyNotReady},
		{"unknown", errors.New("disk on fire"), replyLocal},
		{"fs error", &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}, replyLocal},
		{"replier", replyErr{Reply{452, "4.3.1", "Insufficient system storage"}}, Reply{452, "4.3.1", "Insufficient system storage"}},
		{"replier wins over deadline", fmt.Errorf("%w %w", context.DeadlineExceeded, replyErr{Reply{452, "4.3.1", "full"}}), Reply{452, "4.3.1", "full"}},
		{"CRLF in text is no second reply", replyErr{Reply{550, "5.7.1", "no\r\n250 OK"}}, Reply{550, "5.7.1", "no  250 OK"}},
		{"class mismatch", replyErr{Reply{451, "5.7.1", "x"}}, Reply{451, "4.0.0", "x"}},
		{"code out of range", replyErr{Reply{999, "9.9.9", "x"}}, replyLocal},
		{"354 is no answer", replyErr{Reply{354, "", "go ahead"}}, replyLocal},
		{"empty text", replyErr{Reply{452, "4.3.1", ""}}, Reply{452, "4.3.1", replyLocal.Text}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ErrorReply(tt.err))
		})
	}
	// The peer never sees the error's own text.
	assert.NotContains(t, ErrorReply(errors.New("secret path /var/spool")).Text, "secret")
}

func TestLimitErrorIsReplier(t *testing.T) {
	var err error = &LimitError{Limit: LimitMessageBytes, Max: 1}
	var rp Replier
	require.True(t, errors.As(err, &rp))
	assert.True(t, rp.Reply().Permanent())
	assert.False(t, rp.Reply().Temporary())
}

func TestActionSetting(t *testing.T) {
	var unset ActionSetting
	assert.False(t, unset.IsSet())
	assert.Equal(t, Quarantine, unset.Or(Quarantine))
	assert.Equal(t, Accept, Set(Accept).Or(Quarantine), "Set(Accept) is distinct from unset")
	assert.Equal(t, "unset", unset.String())

	var cfg struct {
		A ActionSetting `json:"a"`
		B ActionSetting `json:"b"`
		C ActionSetting `json:"c"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"a":"accept","b":""}`), &cfg))
	assert.Equal(t, Set(Accept), cfg.A)
	assert.False(t, cfg.B.IsSet())
	assert.False(t, cfg.C.IsSet())
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":"accept","b":"","c":""}`, string(b))
	assert.Error(t, json.Unmarshal([]byte(`{"a":"bounce"}`), &cfg))

	// Policy.OnLimit: unset quarantines, Set(Accept) accepts.
	lim := &LimitError{Limit: LimitDepth}
	assert.Equal(t, Quarantine, Policy{}.limitAction())
	assert.Equal(t, Accept, Policy{OnLimit: Set(Accept)}.limitAction(), lim.Error())
}

func TestSpamStatusNamesThresholds(t *testing.T) {
	tests := []struct {
		pol  Policy
		want string
	}{
		{Policy{}, "Yes, score=6.00 required=5.00 reject=15.00 tests=X"},
		{Policy{AddHeaderScore: 4, QuarantineScore: 8, RejectScore: 20}, "Yes, score=6.00 required=4.00 quarantine=8.00 reject=20.00 tests=X"},
		{Policy{AddHeaderScore: -1, QuarantineScore: 7}, "No, score=6.00 required=7.00 reject=15.00 tests=X"},
		{Policy{AddHeaderScore: -1, RejectScore: -1}, "No, score=6.00 tests=X"},
	}
	for _, tt := range tests {
		v := tt.pol.Decide(Data, []Symbol{{Name: "X", Score: 6}}, Accept)
		assert.Equal(t, tt.want, v.Header(HeaderSpamStatus), "%+v", tt.pol)
		require.Len(t, v.Headers, 2)
		assert.Equal(t, HeaderSpamStatus, v.Headers[0].Name, "X-Spam-Status comes first")
		assert.Equal(t, HeaderVerdict, v.Headers[1].Name)
		assert.Equal(t, v.Headers[0].Value, v.Header(strings.ToLower(HeaderSpamStatus)))
	}
}

func TestFailModeDefault(t *testing.T) {
	boom := errors.New("down")
	pol := Policy{OnError: FailOpen, Filters: map[string]FilterPolicy{
		"dns": {FailScore: 0.5},        // says no mode: the policy's
		"av":  {OnError: FailTempfail}, // says its own
		"uri": {OnError: FailQuarantine, FailScore: 1},
	}}
	assert.Equal(t, FailOpen, pol.filterPolicy("dns").OnError)
	assert.Equal(t, FailOpen, pol.filterPolicy("unnamed").OnError)
	assert.Equal(t, FailTempfail, pol.filterPolicy("av").OnError)
	v := NewPipeline(Options{Policy: pol}, static("dns", Result{}, boom)).Check(ctx, Data, testMsg)
	assert.Equal(t, Accept, v.Action, "a per-filter entry without a mode inherits fail-open")
	assert.Equal(t, 0.5, v.Score)
	assert.Equal(t, FailTempfail, Policy{}.filterPolicy("x").OnError, "the zero policy tempfails")

	var f FailMode
	require.NoError(t, f.UnmarshalText([]byte("fail-open")))
	assert.Equal(t, FailOpen, f)
	require.NoError(t, f.UnmarshalText([]byte("")))
	assert.Equal(t, FailDefault, f)
	b, _ := FailDefault.MarshalText()
	assert.Empty(t, b)
}
