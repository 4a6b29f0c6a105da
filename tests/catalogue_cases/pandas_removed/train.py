"""A tabular classifier written for pandas 1.x: a whitespace table, forward-filled gaps, a cell-wise map."""
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

df = pd.read_csv("table.txt", delim_whitespace=True, error_bad_lines=False)
df = df.fillna(method="ffill")
features = df.drop(columns="label").applymap(float)
X_tr, X_te, y_tr, y_te = train_test_split(features.values, df["label"].values, test_size=0.25, random_state=0)
clf = LogisticRegression(C=1.0, max_iter=200).fit(X_tr, y_tr)
print(f"accuracy={clf.score(X_te, y_te):.4f}")
