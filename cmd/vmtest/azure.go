package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/azl-vmtest/azl-vmtest/harness/azure"
)

// azureCmd: `vmtest azure reap [-older-than D] [-dry-run]` deletes the resource groups that
// runs of the azure target left behind (killed with SIGKILL, or a deletion that failed): every
// group tagged azl-vmtest-run older than D in AZURE_SUBSCRIPTION_ID, and reports each.
func azureCmd(args []string) error {
	if len(args) == 0 || args[0] != "reap" {
		return errors.New("usage: vmtest azure reap [-older-than 6h] [-dry-run]")
	}
	sub := os.Getenv("AZURE_SUBSCRIPTION_ID")
	if sub == "" {
		return errors.New("vmtest azure reap needs AZURE_SUBSCRIPTION_ID: the subscription to clean")
	}
	ctx, stop := signalContext()
	defer stop()
	cred, err := azure.Credential(ctx)
	if err != nil {
		return err
	}
	return reap(ctx, os.Stdout, args[1:], sub, cred, nil)
}

// reap is azureCmd's work, with the credential and client options given (tests: the SDK fakes).
func reap(ctx context.Context, w io.Writer, args []string, sub string, cred azcore.TokenCredential, opts *arm.ClientOptions) error {
	fl := flag.NewFlagSet("azure reap", flag.ContinueOnError)
	olderThan := fl.Duration("older-than", 6*time.Hour, "delete groups created longer ago than this (0: all)")
	dryRun := fl.Bool("dry-run", false, "report only")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *olderThan < 0 {
		return fmt.Errorf("-older-than %s: want 0 or more", *olderThan)
	}
	p, err := azure.New(azure.Config{Subscription: sub}, cred, opts)
	if err != nil {
		return err
	}
	p.Logf = func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	found, err := p.Reap(ctx, *olderThan, *dryRun)
	if err != nil {
		return err
	}
	deleted, failed := 0, 0
	for _, l := range found {
		fmt.Fprintln(w, l)
		if l.Deleted {
			deleted++
		} else if l.Err != nil && l.Age >= *olderThan && !l.Created.IsZero() && !*dryRun {
			failed++
		}
	}
	fmt.Fprintf(w, "%d group(s) tagged %s in subscription %s: %d deleted\n", len(found), azure.TagRun, sub, deleted)
	if failed > 0 {
		return fmt.Errorf("%d group(s) old enough could not be deleted (see above)", failed)
	}
	return nil
}

// signalContext is cancelled by Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
