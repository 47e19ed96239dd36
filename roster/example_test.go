package roster_test

import (
	"fmt"

	"github.com/parleyhq/parley/roster"
)

// The web panel's Add Contact box takes a name and an address, or a bare
// address; anything else gets the seed product's error message.
func ExampleParseContact() {
	name, addr, err := roster.ParseContact("John Doe <John@OtherDomain.com>")
	fmt.Printf("%q %s %v\n", name, addr, err)

	name, addr, err = roster.ParseContact("jane@otherdomain.com")
	fmt.Printf("%q %s %v\n", name, addr, err)

	_, _, err = roster.ParseContact("John Doe john@otherdomain.com")
	fmt.Println(err)
	// Output:
	// "John Doe" john@otherdomain.com <nil>
	// "" jane@otherdomain.com <nil>
	// Invalid value for the name and XMPP address. Please use the format 'Name <username@example.org>'
}
