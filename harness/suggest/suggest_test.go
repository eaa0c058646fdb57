package suggest

import "testing"

func TestDidYouMean(t *testing.T) {
	for _, c := range []struct {
		in   string
		list []string
		want string
	}{
		{"stor", []string{"edge", "mta", "store"}, ` (did you mean "store"?)`},
		{"STORE", []string{"store"}, ` (did you mean "store"?)`},
		{"zzzzzz", []string{"edge", "mta"}, ""},
		{"x", nil, ""},
	} {
		if got := DidYouMean(c.in, c.list); got != c.want {
			t.Errorf("DidYouMean(%q, %v) = %q, want %q", c.in, c.list, got, c.want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance(kitten, sitting) = %d, want 3", d)
	}
}
