// golibvirt drives a libvirt server through go-libvirt (Debian's
// golang-github-digitalocean-go-libvirt-dev), as Go tools such as Terraform's
// libvirt provider do. Usage: golibvirt HOST PORT. It prints one
// "step: result" line per call, so a test can compare two servers' runs;
// errors print as "error <code>: <message>". Exit status 0 unless the
// connection itself fails.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

const domainXML = `<domain type='test'>
  <name>golibvirt</name>
  <uuid>6a9c1e2f-0d7b-4c1e-9a55-3f2b8c0d1e42</uuid>
  <memory>65536</memory>
  <vcpu>1</vcpu>
  <os><type>hvm</type></os>
</domain>`

func report(step string, err error, format string, args ...interface{}) {
	if err != nil {
		if lverr, ok := err.(libvirt.Error); ok {
			fmt.Printf("%s: error %d: %s\n", step, lverr.Code, lverr.Message)
		} else {
			fmt.Printf("%s: error: %v\n", step, err)
		}
		return
	}
	fmt.Printf("%s: "+format+"\n", append([]interface{}{step}, args...)...)
}

// nextEvent waits for one lifecycle event; the server owes it, so the bound
// only keeps a broken server from hanging the program.
func nextEvent(events <-chan libvirt.DomainEventLifecycleMsg) string {
	select {
	case ev, ok := <-events:
		if !ok {
			return "event stream closed"
		}
		return fmt.Sprintf("%s event %d detail %d", ev.Dom.Name, ev.Event, ev.Detail)
	case <-time.After(30 * time.Second):
		return "no event"
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: golibvirt HOST PORT")
		os.Exit(2)
	}
	l := libvirt.NewWithDialer(dialers.NewRemote(os.Args[1], dialers.UsePort(os.Args[2])))
	if err := l.ConnectToURI(libvirt.TestDefault); err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}

	version, err := l.ConnectGetLibVersion()
	report("lib version", err, "%d", version)

	domains, _, err := l.ConnectListAllDomains(1, 0)
	names := []string{}
	for _, d := range domains {
		names = append(names, fmt.Sprintf("%s/%d", d.Name, d.ID))
	}
	sort.Strings(names)
	report("list all", err, "%v", names)

	test, err := l.DomainLookupByName("test")
	report("lookup test", err, "%s id %d", test.Name, test.ID)
	_, err = l.DomainLookupByName("no-such-domain")
	report("lookup missing", err, "found")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := l.LifecycleEvents(ctx)
	report("lifecycle events", err, "registered")

	dom, err := l.DomainDefineXML(domainXML)
	report("define", err, "%s id %d", dom.Name, dom.ID)
	fmt.Printf("event: %s\n", nextEvent(events))

	err = l.DomainCreate(dom)
	report("create", err, "ok")
	fmt.Printf("event: %s\n", nextEvent(events))
	dom, err = l.DomainLookupByName("golibvirt")
	report("lookup started", err, "%s running: %t", dom.Name, dom.ID > 0)
	state, reason, err := l.DomainGetState(dom, 0)
	report("state", err, "%d reason %d", state, reason)

	jobType, _, _, _, _, _, _, _, _, _, _, _, err := l.DomainGetJobInfo(dom)
	report("job info", err, "type %d", jobType)
	jobType, params, err := l.DomainGetJobStats(dom, 0)
	report("job stats", err, "type %d, %d params", jobType, len(params))
	err = l.DomainAbortJob(dom)
	report("abort job", err, "ok")
	err = l.DomainMigrateSetMaxSpeed(dom, 100, 0)
	report("set max speed", err, "ok")
	speed, err := l.DomainMigrateGetMaxSpeed(dom, 0)
	report("max speed", err, "%d", speed)
	err = l.DomainMigrateSetMaxDowntime(dom, 250, 0)
	report("set max downtime", err, "ok")
	downtime, err := l.DomainMigrateGetMaxDowntime(dom, 0)
	report("max downtime", err, "%d", downtime)

	err = l.DomainDestroy(dom)
	report("destroy", err, "ok")
	fmt.Printf("event: %s\n", nextEvent(events))
	err = l.DomainUndefine(dom)
	report("undefine", err, "ok")
	fmt.Printf("event: %s\n", nextEvent(events))
	_, err = l.DomainLookupByName("golibvirt")
	report("lookup undefined", err, "found")

	cancel()
	report("disconnect", l.Disconnect(), "ok")
}
