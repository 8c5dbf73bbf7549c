// A small web server: one page, rendered from templates/index.html, listing
// the notes stored in dev.db (SQLite, through go-sqlite3).
//
// `goapp -init FILE` creates FILE with the sample notes and exits: kiln runs
// it at build time to make the dev.db the image ships.
package main

import (
	"database/sql"
	"flag"
	"html/template"
	"log"
	"net/http"
	"os"

	_ "github.com/mattn/go-sqlite3"
)

type note struct {
	ID   int
	Text string
}

var sample = []string{
	"Multi-stage builds keep the compiler out of the image.",
	"kiln builds each stage once, keyed by its inputs.",
}

func main() {
	initDB := flag.String("init", "", "create a database with sample notes at `FILE` and exit")
	flag.Parse()
	if *initDB != "" {
		if err := create(*initDB); err != nil {
			log.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite3", "file:dev.db?mode=ro")
	if err != nil {
		log.Fatal(err)
	}
	page := template.Must(template.ParseFiles("templates/index.html"))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		notes, err := list(db)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := page.Execute(w, notes); err != nil {
			log.Print(err)
		}
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	log.Printf("listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}

func create(path string) error {
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("create table notes (id integer primary key, text text not null)"); err != nil {
		return err
	}
	for _, text := range sample {
		if _, err := db.Exec("insert into notes (text) values (?)", text); err != nil {
			return err
		}
	}
	return nil
}

func list(db *sql.DB) ([]note, error) {
	rows, err := db.Query("select id, text from notes order by id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var notes []note
	for rows.Next() {
		var n note
		if err := rows.Scan(&n.ID, &n.Text); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}
