package ssh

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	gossh "golang.org/x/crypto/ssh"

	"github.com/azl-vmtest/azl-vmtest/harness/ssh/sshtest"
)

func TestRunExitCodesAndPinnedKey(t *testing.T) {
	srv := sshtest.NewServer(t, nil)
	addr, host, user := srv.Addr, srv.HostKey, srv.UserKey
	ctx := context.Background()
	c, err := Dial(ctx, Config{Addr: addr, User: "u", Signer: user, HostKey: host.PublicKey(), BannerTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	res, err := c.Run(ctx, "echo hello", nil)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(res.Stdout))
	assert.Equal(t, 0, res.ExitCode)
	res, err = c.Run(ctx, "exit 3", nil)
	require.NoError(t, err, "a non-zero exit is a result, not an error")
	assert.Equal(t, 3, res.ExitCode)
	require.NoError(t, c.Alive(ctx))

	// A command that never ends returns when its context does.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Run(cctx, "sleep 5", nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)

	// Another host key is refused, never accepted; so is a key of a type the server lacks.
	_, err = Dial(ctx, Config{Addr: addr, User: "u", Signer: user, HostKey: sshtest.NewSigner(t).PublicKey()})
	require.Error(t, err)
	assert.True(t, IsHostKeyMismatch(err), "%v", err)
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	epub, err := gossh.NewPublicKey(&ek.PublicKey)
	require.NoError(t, err)
	_, err = Dial(ctx, Config{Addr: addr, User: "u", Signer: user, HostKey: epub})
	require.Error(t, err)
	assert.True(t, IsHostKeyMismatch(err), "%v", err)
}

// muteServer accepts connections, sends each the greeting (nothing if it is empty) and then
// says nothing more until the test ends.
func muteServer(t *testing.T, greeting string) (addr string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte(greeting))
		}
	}()
	return l.Addr().String()
}

func TestSilentServerFailsFastWithBannerTimeout(t *testing.T) {
	// Like QEMU's user-net before the guest answers: TCP accepted, nothing said.
	addr := muteServer(t, "")
	start := time.Now()
	_, err := Dial(context.Background(), Config{Addr: addr, User: "u", Signer: sshtest.NewSigner(t), HostKey: sshtest.NewSigner(t).PublicKey(), BannerTimeout: 300 * time.Millisecond})
	require.ErrorIs(t, err, ErrNoBanner)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestDialEndsWithItsContextMidHandshake(t *testing.T) {
	// An SSH server that sends its banner and then says nothing more: only the context ends
	// the attempt before its handshake deadline.
	addr := muteServer(t, "SSH-2.0-mute\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	answered := false
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := Dial(ctx, Config{Addr: addr, User: "u", Signer: sshtest.NewSigner(t), HostKey: sshtest.NewSigner(t).PublicKey(),
		BannerTimeout: 5 * time.Second, HandshakeTimeout: 20 * time.Second, Answered: func() { answered = true }})
	require.ErrorIs(t, err, context.Canceled)
	assert.True(t, answered, "the banner was heard")
	assert.Less(t, time.Since(start), 2*time.Second, "the attempt ends with its context, not its 20 s deadline")
}
