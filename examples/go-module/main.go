package main

import "fmt"

func myFunc() string {
	return "DevOps is the \U0001F410"
}

func main() {
	fmt.Println(myFunc())
}
