package azure

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// Leftover is a group the harness created, as the reaper found it.
type Leftover struct {
	Group, Run, Owner, Machine string
	Created                    time.Time // zero if its tag is unreadable
	Age                        time.Duration
	Deleted                    bool
	Err                        error // why it was not deleted (kept young, unreadable tag, Azure's error)
}

func (l Leftover) String() string {
	state := "deleted"
	if !l.Deleted {
		state = "kept: " + l.Err.Error()
	}
	return fmt.Sprintf("%s (run %s, owner %s, machine %s, age %s): %s", l.Group, l.Run, l.Owner, l.Machine, l.Age.Round(time.Minute), state)
}

// Reap finds every group tagged TagRun in the subscription and deletes those created more
// than olderThan ago (all of them if olderThan is 0). Groups whose creation tag is unreadable
// are reported and kept: the reaper never guesses. With dryRun nothing is deleted.
func (p *Provisioner) Reap(ctx context.Context, olderThan time.Duration, dryRun bool) ([]Leftover, error) {
	var found []Leftover
	pager := p.groups.NewListPager(&armresources.ResourceGroupsClientListOptions{Filter: to.Ptr("tagName eq '" + TagRun + "'")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return found, fmt.Errorf("azure: listing resource groups: %w", Explain(err))
		}
		for _, g := range page.Value {
			if g.Name == nil || g.Tags[TagRun] == nil {
				continue
			}
			l := Leftover{Group: *g.Name, Run: tag(g.Tags, TagRun), Owner: tag(g.Tags, TagOwner), Machine: tag(g.Tags, TagMachine)}
			created, err := time.Parse(time.RFC3339, tag(g.Tags, TagCreated))
			if err != nil {
				l.Err = fmt.Errorf("tag %s=%q is not a time: delete it by hand if it is not in use", TagCreated, tag(g.Tags, TagCreated))
				found = append(found, l)
				continue
			}
			l.Created, l.Age = created, p.Now().Sub(created)
			found = append(found, l)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Group < found[j].Group })
	for i := range found {
		l := &found[i]
		switch {
		case l.Err != nil:
		case l.Age < olderThan:
			l.Err = fmt.Errorf("younger than %s: may belong to a run still going", olderThan)
		case dryRun:
			l.Err = fmt.Errorf("dry run")
		default:
			if l.Err = p.deleteGroup(ctx, l.Group); l.Err == nil {
				l.Deleted = true
			}
		}
	}
	return found, nil
}

func tag(tags map[string]*string, k string) string {
	if v := tags[k]; v != nil {
		return *v
	}
	return ""
}
