package main

import "fmt"

func main() {
	fmt.Println("Hello, world! (built in a kiln builder stage)")
}
